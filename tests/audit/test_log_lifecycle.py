"""The log across an aggregator's life: records as written, restarts that continue the chain,
a crash that verification reports, one writer at a time, nothing after close."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fedsilo.audit import AuditLog, AuditLogClosed, AuditVerificationError, TamperKind, verify_audit_log
from fedsilo.identity import SigningKey
from fedsilo.policy import input_digest

from .conftest import DECISIONS, write_log


def test_a_decision_record_carries_its_input_and_the_chain(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key) as log:
        written = log.record_decision(
            job="j", round_number=4, silo="a", payload_digest="sha256:ab", policy_input={"job": {"round": 4}},
            allow=False, reasons=("stale_round: x",), policy_revision="r7", engine="opa-server",
        )  # fmt: skip
        assert log.head == (1, written["hash"])
    first = json.loads(path.read_text().splitlines()[0])
    assert first == written
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first["time"])
    assert first["input"] == {"job": {"round": 4}} and first["input_digest"] == input_digest({"job": {"round": 4}})
    assert (first["decision"], first["reasons"], first["policy_revision"]) == ("deny", ["stale_round: x"], "r7")
    assert first["prev_hash"] == "sha256:" + "0" * 64


def test_a_restarted_aggregator_continues_the_chain(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key)
    write_log(path, key, decisions=3)
    report = verify_audit_log(path, key.public_key)
    assert report.decisions == DECISIONS + 3 and report.records == DECISIONS + 3 + 4


def test_a_crash_leaves_a_log_that_verification_calls_truncated_until_it_is_reopened_and_closed(
    tmp_path: Path, key: SigningKey
) -> None:
    path = tmp_path / "audit.jsonl"
    crashed = write_log(path, key, decisions=6, close=False)
    with pytest.raises(AuditVerificationError) as caught:
        verify_audit_log(path, key.public_key)
    assert caught.value.kind is TamperKind.TRUNCATED and "records 6..7" in str(caught.value)
    crashed.close()
    assert verify_audit_log(path, key.public_key).decisions == 6


def test_a_tampered_log_is_not_extended(sealed_log: Path, key: SigningKey) -> None:
    lines = sealed_log.read_text().splitlines()
    sealed_log.write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    with pytest.raises(AuditVerificationError, match="dropped"):
        AuditLog(sealed_log, key)


def test_another_key_cannot_extend_the_log(sealed_log: Path) -> None:
    with pytest.raises(AuditVerificationError) as caught:
        AuditLog(sealed_log, SigningKey.generate())
    assert caught.value.kind is TamperKind.WRONG_KEY


def test_only_one_writer_at_a_time(tmp_path: Path, key: SigningKey) -> None:
    with AuditLog(tmp_path / "audit.jsonl", key), pytest.raises(BlockingIOError):
        AuditLog(tmp_path / "audit.jsonl", key)


def test_nothing_is_recorded_after_close_and_close_is_idempotent(tmp_path: Path, key: SigningKey) -> None:
    log = write_log(tmp_path / "audit.jsonl", key, decisions=1)
    log.close()
    with pytest.raises(AuditLogClosed):
        log.record_decision(
            job="j", round_number=1, silo="a", payload_digest="", policy_input={}, allow=True, reasons=(),
            policy_revision="r", engine="e",
        )  # fmt: skip
    assert verify_audit_log(tmp_path / "audit.jsonl", key.public_key).records == 2


def test_checkpoint_spacing_must_be_positive(tmp_path: Path, key: SigningKey) -> None:
    with pytest.raises(ValueError, match="checkpoint_every"):
        AuditLog(tmp_path / "audit.jsonl", key, checkpoint_every=0)


def test_a_checkpoint_on_demand_signs_the_head_once_and_a_reopened_log_knows_it(
    tmp_path: Path, key: SigningKey
) -> None:
    path = tmp_path / "audit.jsonl"
    log = write_log(path, key, decisions=2, close=False)
    head = log.checkpoint()
    # Asked again with nothing new, it signs nothing more.
    assert log.checkpoint() == head == log.signed_head
    assert (head.seq, head.hash) == (2, json.loads(path.read_text().splitlines()[1])["hash"])
    log.close()
    assert len(path.read_text().splitlines()) == 4
    report = verify_audit_log(path, key.public_key, published=head)
    with AuditLog(path, key) as reopened:
        assert reopened.signed_head == report.signed_head and reopened.signed_head.kind == "close"
