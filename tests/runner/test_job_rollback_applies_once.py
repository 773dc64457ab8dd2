"""``spec.rollback`` on the aggregator's volume: applied once as an audited decision, later rounds moved aside, a finished job reopened."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fedsilo.aggregator import Checkpoints, RoundSummary
from fedsilo.api import Manifest, RollbackSpec, load_manifest
from fedsilo.audit import verify_audit_log
from fedsilo.identity import sha256_digest
from fedsilo.launch import OUTCOME_FILE
from fedsilo.protocol import encode_weights
from fedsilo.registry import ModelSeal
from fedsilo.runner import RecoveryError, aggregator_signing_key
from fedsilo.runner._recovery import apply_job_rollback
from tests.conftest import ROOT

WEIGHTS = {"w": np.ones(3, dtype=np.float32)}


def _state(tmp_path: Path) -> tuple[Path, Checkpoints]:
    state = tmp_path / "state"
    key = aggregator_signing_key(state)
    checkpoints = Checkpoints(state, ledger_run="quickstart/uid")
    digest = sha256_digest(encode_weights(WEIGHTS))
    summaries = [RoundSummary(n, ("hospital-a",), ("hospital-a",), (), {}, 1.0, digest) for n in (1, 2)]
    for n in range(3):
        checkpoints.write("quickstart", "fedavg", WEIGHTS, {}, ModelSeal(b"{}", key.sign(b"{}")), summaries[:n])
    (state / OUTCOME_FILE).write_text("{}")
    return state, checkpoints


def _asking(to_round: int, reason: str) -> Manifest:
    manifest = load_manifest(ROOT / "examples" / "quickstart.yaml")
    spec = manifest.job.spec.model_copy(update={"rollback": RollbackSpec(to_round=to_round, reason=reason)})
    return Manifest(manifest.job.model_copy(update={"spec": spec}), manifest.silos)


def test_a_rollback_is_applied_once_recorded_and_reopens_a_finished_job(tmp_path: Path) -> None:
    state, checkpoints = _state(tmp_path)
    manifest = _asking(0, "the data of round 1 was mislabelled")
    report = apply_job_rollback(state, manifest, checkpoints, state / "registry")
    assert report is not None and (report.to_round, report.from_round) == (0, 2)
    assert checkpoints.rounds() == [0]
    assert len(list((state / "checkpoints" / "discarded").glob("*/round-*.json"))) == 2
    assert not (state / OUTCOME_FILE).exists()
    records = [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines()]
    operation = next(r for r in records if r["kind"] == "operation")
    assert (operation["operation"], operation["round"], operation["reason"]) == (
        "rollback",
        0,
        "the data of round 1 was mislabelled",
    )
    verify_audit_log(state / "audit.jsonl", aggregator_signing_key(state).public_key)
    # The operator restarts the aggregator on every spec change: the same rollback is not applied again.
    assert apply_job_rollback(state, manifest, checkpoints, state / "registry") is None
    assert apply_job_rollback(state, _asking(0, "another reason"), checkpoints, state / "registry") is not None


def test_a_rollback_to_a_round_the_volume_has_no_checkpoint_of_is_refused_naming_those_it_has(tmp_path: Path) -> None:
    state, checkpoints = _state(tmp_path)
    with pytest.raises(RecoveryError, match=r"round 7 has no checkpoint .*choose one of 0, 1, 2"):
        apply_job_rollback(state, _asking(7, "typo"), checkpoints, state / "registry")
    assert checkpoints.rounds() == [0, 1, 2] and (state / OUTCOME_FILE).exists()


def test_a_job_without_a_rollback_changes_nothing(tmp_path: Path) -> None:
    state, checkpoints = _state(tmp_path)
    manifest = load_manifest(ROOT / "examples" / "quickstart.yaml")
    assert apply_job_rollback(state, manifest, checkpoints, state / "registry") is None
    assert checkpoints.rounds() == [0, 1, 2]
