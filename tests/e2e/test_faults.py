"""Faults during a run: a silo that vanishes mid-round, a quorum that is lost. Never a hang."""

from __future__ import annotations

from pathlib import Path

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


def test_losing_the_quorum_fails_the_job_with_a_clear_message(tmp_path: Path) -> None:
    path = quick_manifest(tmp_path, roundTimeoutSeconds=8, minSilos=3)
    report = run_with_fault(path, tmp_path, KillOnRound("hospital-b", 2)).execute()
    assert report.status == "failed"
    assert report.failure.startswith("round 2: quorum lost")
    assert "minSilos is 3" in report.failure
