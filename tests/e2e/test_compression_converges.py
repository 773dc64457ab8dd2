"""Compressed updates learn what uncompressed ones learn: the quickstart (15 rounds, same seeds)
with masked 8-bit levels within 1 point of masked float32 and masked 4-bit with error feedback
(its value range near the updates' size) within 2.

Plain top-k 1% with error feedback does NOT reach the issue's goal of 2 points in 15 rounds
(4.7 points below plain float32 on seed 7, benchmarks/results/compression): its case guards
that measured level (within 6 points) so a regression shows, and the goal stays open."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsilo.api import load_manifest
from fedsilo.runner import LocalRun, RunOptions

from .conftest import QUICKSTART

SEEDS = (7, 8)


@cache
def _accuracy(scratch: Path, seed: int, mode: str, compression: tuple[tuple[str, Any], ...] | None) -> float:
    documents = list(yaml.safe_load_all(QUICKSTART.read_text()))
    job = copy.deepcopy(documents[0])
    job["spec"]["seed"] = seed
    job["spec"]["aggregation"]["mode"] = mode
    # Plain aggregation is allowed below "sensitive" data only; a loaded machine gets long to start silos.
    job["spec"]["policy"]["dataClass"] = "internal"
    job["spec"]["roundTimeoutSeconds"] = 600
    if compression is not None:
        job["spec"]["compression"] = dict(compression)
    folder = scratch / f"{mode}-{seed}-{abs(hash(compression))}"
    folder.mkdir(parents=True)
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump_all([job, *documents[1:]], sort_keys=False))
    # The trainers' sandbox is tested elsewhere; this measures what is learned.
    options = RunOptions(
        manifest_path=path, workdir=folder / "run", registry=folder / "registry", baseline=False, isolate=False
    )
    report = LocalRun(load_manifest(path), options).execute()
    assert report.status == "succeeded", report.failure
    assert report.final_accuracy is not None
    assert all(row.compression is not None for row in report.rounds) == (compression is not None)
    return report.final_accuracy


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compression")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("mode", "compression", "points"),
    [
        ("masked", {"bits": 8}, 1.0),
        ("masked", {"bits": 4, "errorFeedback": True, "valueRange": 0.25}, 2.0),
        ("plain", {"topK": 0.01, "errorFeedback": True}, 6.0),
    ],
    ids=["masked-8-bit", "masked-4-bit-ef", "plain-top-1pct-ef"],
)
def test_compressed_runs_stay_near_the_uncompressed_accuracy(
    scratch: Path, seed: int, mode: str, compression: dict[str, Any], points: float
) -> None:
    reference = _accuracy(scratch, seed, mode, None)
    compressed = _accuracy(scratch, seed, mode, tuple(sorted(compression.items())))
    assert compressed >= reference - points / 100, (reference, compressed)
