"""Homomorphic aggregation end to end, the README's quickstart in separate sandboxed processes: a silo
killed as a round opens is left out of that round's key. (That it learns what masked mode learns is in
test_modes_learn_the_same.py; a silo lost after the key ceremony fails only its round:
tests/he/test_rounds_over_grpc.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsilo_testing.local_runs import KillOnRound, run_with_fault

from .conftest import quick_manifest


@pytest.mark.timeout(2400)  # the killed silo's absence costs a round's timeout, generous on a slow machine
def test_a_silo_killed_as_a_homomorphic_round_opens_is_absent_from_its_key(tmp_path: Path) -> None:
    # Killed before the key ceremony closes: the others make the round's key without it.
    # The round with the killed silo waits out its key step's deadline: short enough to keep the
    # suite quick, long enough for live silos that already joined.
    path = quick_manifest(tmp_path, roundTimeoutSeconds=90, minSilos=2, aggregation={"mode": "homomorphic"})
    report = run_with_fault(path, tmp_path, KillOnRound("hospital-c", 2)).execute()
    assert report.status == "succeeded", report.failure
    rounds = {row.round: row for row in report.rounds}
    assert "hospital-c" in rounds[1].accepted
    assert sorted(rounds[2].accepted) == ["hospital-a", "hospital-b"]
    assert "hospital-c" not in rounds[3].participants
