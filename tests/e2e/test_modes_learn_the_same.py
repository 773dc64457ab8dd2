"""Plain, masked and homomorphic aggregation learn the same model (same seed, same job): masking
hides updates within fixed-point error, and CKKS adds ciphertexts within its approximation error.

The three 4-round runs are made once for the module and compared pairwise, so each mode costs one
whole run however many comparisons read it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fedsilo.api import load_manifest
from fedsilo.runner import LocalRun, RunOptions

from .conftest import quick_manifest


@pytest.fixture(scope="module")
def accuracy(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], float]:
    """The final accuracy of the quickstart in ``mode``, run once per mode."""
    finished: dict[str, float] = {}

    def run(mode: str) -> float:
        if mode not in finished:
            # One letter: the trainers' Unix socket paths live under it, and the OS caps them at 108 bytes.
            folder = tmp_path_factory.mktemp(mode[0])
            # "internal" data: the policy allows plain aggregation only below "sensitive". Generous
            # timeouts: a slow machine must not turn a timeout into a different result.
            path = quick_manifest(
                folder,
                rounds=4,
                roundTimeoutSeconds=300,
                aggregation={"mode": mode},
                policy={"normCap": 20.0, "dataClass": "internal"},
            )
            options = RunOptions(
                manifest_path=path, workdir=folder / "run", registry=folder / "registry", baseline=False
            )
            report = LocalRun(load_manifest(path), options).execute()
            assert report.status == "succeeded", report.failure
            assert report.final_accuracy is not None
            finished[mode] = report.final_accuracy
        return finished[mode]

    return run


@pytest.mark.timeout(2400)
def test_masked_and_plain_runs_reach_the_same_accuracy(accuracy: Callable[[str], float]) -> None:
    plain, masked = accuracy("plain"), accuracy("masked")
    assert abs(masked - plain) <= 0.01, (plain, masked)


@pytest.mark.timeout(2400)
def test_the_homomorphic_quickstart_reaches_masked_modes_accuracy(accuracy: Callable[[str], float]) -> None:
    masked, homomorphic = accuracy("masked"), accuracy("homomorphic")
    assert abs(homomorphic - masked) <= 0.005, (masked, homomorphic)
