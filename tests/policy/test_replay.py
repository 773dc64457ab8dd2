"""An auditor re-runs the policy on the inputs the log stored and finds any decision it would not make."""

from __future__ import annotations

import json
from pathlib import Path

from fedsilo.audit import AuditLog
from fedsilo.identity import SigningKey
from fedsilo.policy import EmbeddedRegoEngine, PolicyEngine, PolicyGate, replay_audit_log

from .conftest import VALID, varied


def _log(path: Path, engine: EmbeddedRegoEngine) -> None:
    with AuditLog(path, SigningKey.generate()) as audit:
        gate = PolicyGate(engine, audit)
        for change in ({}, {"update": {"l2_norm": 6.0}}, {"ledger": {"nonce_seen": True}}):
            gate.check(varied(**change) if change else VALID)
        audit.record_decision(
            job="j", round_number=3, silo="b", payload_digest="sha256:00", policy_input=VALID.to_document(),
            allow=False, reasons=["policy_unavailable: no decision"], policy_revision="", engine="opa-server",
        )  # fmt: skip


def test_a_log_written_by_the_gate_replays_consistently_on_either_engine(
    tmp_path: Path, embedded: EmbeddedRegoEngine, engine: PolicyEngine
) -> None:
    _log(tmp_path / "audit.jsonl", embedded)
    report = replay_audit_log(tmp_path / "audit.jsonl", engine)
    assert report.consistent and report.replayed == 3 and report.without_engine == 1


def test_a_decision_the_policy_would_not_make_is_reported(tmp_path: Path, embedded: EmbeddedRegoEngine) -> None:
    path = tmp_path / "audit.jsonl"
    _log(path, embedded)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[1]["decision"], records[1]["reasons"] = "allow", []
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    report = replay_audit_log(path, embedded)
    assert not report.consistent
    [mismatch] = report.mismatches
    assert mismatch.seq == 2 and mismatch.recorded.allow and mismatch.recomputed.codes == ("norm_cap_exceeded",)
