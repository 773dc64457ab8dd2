"""Faults during a run: a silo that vanishes or is stopped mid-round, a quorum that is lost. Never a hang."""

from __future__ import annotations

import json
from pathlib import Path

from fedsilo.runner import LocalRun
from fedsilo.sidecar._sidecar import LEAVE_REASON
from fedsilo_testing.local_runs import KillOnRound, run_with_fault

from .conftest import quick_manifest


def test_a_silo_killed_mid_round_leaves_the_round_to_the_others(tmp_path: Path) -> None:
    path = quick_manifest(tmp_path, roundTimeoutSeconds=8, minSilos=2)
    report = run_with_fault(path, tmp_path, KillOnRound("hospital-c", 2)).execute()
    assert report.status == "succeeded", report.failure
    rounds = {row.round: row for row in report.rounds}
    assert "hospital-c" in rounds[1].accepted
    assert "hospital-c" in rounds[2].dropped and sorted(rounds[2].accepted) == ["hospital-a", "hospital-b"]
    assert "hospital-c" not in rounds[3].participants


def test_a_silo_stopped_mid_round_leaves_it_at_once(tmp_path: Path) -> None:
    # SIGTERM, as a deleted pod gets: the sidecar sends its Leave, so the round need not wait two minutes.
    path = quick_manifest(tmp_path, roundTimeoutSeconds=120, minSilos=2)
    report = run_with_fault(path, tmp_path, KillOnRound("hospital-c", 2, LocalRun.stop_silo)).execute()
    assert report.status == "succeeded", report.failure
    rounds = {row.round: row for row in report.rounds}
    assert rounds[2].left == {"hospital-c": LEAVE_REASON}
    assert "hospital-c" not in rounds[2].accepted and sorted(rounds[2].accepted) == ["hospital-a", "hospital-b"]
    assert "hospital-c" not in rounds[3].participants
    records = [json.loads(line) for line in (tmp_path / "run" / "audit.jsonl").read_text().splitlines()]
    (leave,) = [r for r in records if r["kind"] == "operation" and r["operation"] == "leave"]
    assert leave["round"] == 2 and leave["details"]["silo"] == "hospital-c"
    # Stopped, not crashed: the silo's processes ended as asked.
    assert (tmp_path / "run" / "silos" / "hospital-c" / "sidecar.log").read_text().rstrip().endswith("terminated")


def test_losing_the_quorum_fails_the_job_with_a_clear_message(tmp_path: Path) -> None:
    path = quick_manifest(tmp_path, roundTimeoutSeconds=8, minSilos=3)
    report = run_with_fault(path, tmp_path, KillOnRound("hospital-b", 2)).execute()
    assert report.status == "failed"
    assert report.failure.startswith("round 2: quorum lost")
    assert "minSilos is 3" in report.failure
