"""A silo whose trainer dies: its sidecar stops taking part (no task it cannot serve, no update,
no new Join), so later rounds do not wait for it, while the other silos finish the job."""

from __future__ import annotations

from pathlib import Path

from fedsilo.runner import LocalRun
from fedsilo_testing.local_runs import KillOnRound, run_with_fault

from .conftest import quick_manifest


def test_a_sidecar_whose_trainer_died_sits_the_rounds_out(tmp_path: Path) -> None:
    path = quick_manifest(tmp_path, rounds=4, roundTimeoutSeconds=8, minSilos=2)
    report = run_with_fault(path, tmp_path, KillOnRound("hospital-c", 2, LocalRun.kill_trainer)).execute()
    assert report.status == "succeeded", report.failure
    rounds = {row.round: row for row in report.rounds}
    assert "hospital-c" in rounds[1].accepted
    for number in (2, 3, 4):
        assert "hospital-c" not in rounds[number].accepted
        assert sorted(rounds[number].accepted) == ["hospital-a", "hospital-b"]
    # The hub stops waiting for it: it is gone after round 2 and no later round includes it,
    # because its sidecar, whose trainer is off the link, does not join again.
    assert "hospital-c" in rounds[2].dropped
    for number in (3, 4):
        assert "hospital-c" not in rounds[number].participants
    log = (tmp_path / "run" / "silos" / "hospital-c" / "sidecar.log").read_text()
    assert "joining again" not in log
