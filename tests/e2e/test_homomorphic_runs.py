"""Homomorphic aggregation end to end, the README's quickstart in separate sandboxed processes: it
learns what masked mode learns (same seed), and a silo killed as a round opens is left out of that
round's key. (A silo lost after the key ceremony fails only its round: tests/he/test_rounds_over_grpc.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsilo.api import load_manifest
from fedsilo.runner import LocalRun, RunOptions

from .conftest import KillOnRound, quick_manifest


def _run(tmp_path: Path, mode: str, rounds: int = 4) -> float:
    # One letter: the trainers' Unix socket paths live under it, and the OS caps them at 108 bytes.
    folder = tmp_path / mode[0]
    folder.mkdir()
    # Generous timeouts: a slow machine must not turn a timeout into a different result.
    path = quick_manifest(folder, rounds=rounds, roundTimeoutSeconds=300, aggregation={"mode": mode})
    report = LocalRun(
        load_manifest(path),
        RunOptions(manifest_path=path, workdir=folder / "run", registry=folder / "registry", baseline=False),
    ).execute()
    assert report.status == "succeeded", report.failure
    assert report.final_accuracy is not None
    return report.final_accuracy


@pytest.mark.timeout(2400)  # two whole local runs, back to back
def test_the_homomorphic_quickstart_reaches_masked_modes_accuracy(tmp_path: Path) -> None:
    masked = _run(tmp_path, "masked")
    homomorphic = _run(tmp_path, "homomorphic")
    assert abs(homomorphic - masked) <= 0.005, (masked, homomorphic)


@pytest.mark.timeout(2400)  # the killed silo's absence costs a round's timeout, generous on a slow machine
def test_a_silo_killed_as_a_homomorphic_round_opens_is_absent_from_its_key(tmp_path: Path) -> None:
    # Killed before the key ceremony closes: the others make the round's key without it.
    # The round with the killed silo waits out its key step's deadline: short enough to keep the
    # suite quick, long enough for live silos that already joined.
    path = quick_manifest(tmp_path, roundTimeoutSeconds=90, minSilos=2, aggregation={"mode": "homomorphic"})
    killer = KillOnRound("hospital-c", 2)
    run = LocalRun(
        load_manifest(path),
        RunOptions(manifest_path=path, workdir=tmp_path / "run", registry=tmp_path / "registry", baseline=False),
        killer,
    )
    killer.run = run
    report = run.execute()
    assert report.status == "succeeded", report.failure
    rounds = {row.round: row for row in report.rounds}
    assert "hospital-c" in rounds[1].accepted
    assert sorted(rounds[2].accepted) == ["hospital-a", "hospital-b"]
    assert "hospital-c" not in rounds[3].participants
