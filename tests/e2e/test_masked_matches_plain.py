"""Masked aggregation reaches the same model as plain aggregation (same seed), within
fixed-point error: masking hides updates without changing what is learned."""

from __future__ import annotations

from pathlib import Path

from fedsilo.api import load_manifest
from fedsilo.runner import LocalRun, RunOptions

from .conftest import quick_manifest


def _run(tmp_path: Path, mode: str) -> float:
    folder = tmp_path / mode
    folder.mkdir()
    # "internal" data: the policy allows plain aggregation only below "sensitive".
    path = quick_manifest(folder, rounds=4, aggregation={"mode": mode}, policy={"normCap": 20.0, "dataClass": "internal"})
    report = LocalRun(
        load_manifest(path),
        RunOptions(manifest_path=path, workdir=folder / "run", registry=folder / "registry", baseline=False),
    ).execute()
    assert report.status == "succeeded", report.failure
    assert report.final_accuracy is not None
    return report.final_accuracy


def test_masked_and_plain_runs_reach_the_same_accuracy(tmp_path: Path) -> None:
    plain = _run(tmp_path, "plain")
    masked = _run(tmp_path, "masked")
    assert abs(masked - plain) <= 0.01, (plain, masked)
