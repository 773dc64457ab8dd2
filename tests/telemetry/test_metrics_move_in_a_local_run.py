"""A real local run serves /metrics, and its figures move round by round, with the documented labels.

The run is plain-mode and silo-level DP, so most families have something to say: each round
adds bytes, latency, decisions and spent epsilon, the silos' evaluations give accuracy from
round 2 on, and plain mode gives each update's distance to the model's step. (A drop costs a
whole round timeout, too long for a loaded CI machine: the drop-rate rule has its promtool
test, and the drop counter's other outcomes move here.)
The test reads the real endpoint over HTTP after each round, from the round observer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsilo.aggregator import RoundSummary
from fedsilo.api import load_manifest
from fedsilo.protocol import PolicyVerdict
from fedsilo.runner import LocalRun
from fedsilo_testing.local_runs import run_options

from ..e2e.conftest import quick_manifest
from .conftest import Samples, scrape, value

pytestmark = pytest.mark.e2e

JOB = "quickstart"
SILOS = ("hospital-a", "hospital-b", "hospital-c")


class ScrapeEachRound:
    """Scrapes the run's /metrics each time a round is recorded."""

    def __init__(self) -> None:
        self.run: LocalRun | None = None
        self.scrapes: list[Samples] = []

    def round_started(self, round_number: int, participants: tuple[str, ...]) -> None:
        pass

    def update_decided(self, round_number: int, silo: str, verdict: PolicyVerdict) -> None:
        pass

    def round_finished(self, summary: RoundSummary) -> None:
        assert self.run is not None and self.run.metrics_port is not None
        self.scrapes.append(scrape(self.run.metrics_port))


def test_the_hub_metrics_move_as_the_rounds_go(tmp_path: Path) -> None:
    path = quick_manifest(
        tmp_path,
        rounds=3,
        # Also the least time silos get to join (at least 120 s): generous, for a loaded machine.
        roundTimeoutSeconds=300,
        aggregation={"mode": "plain"},
        privacy={"mode": "silo", "noiseMultiplier": 2.0, "delta": 1e-5, "accountant": "rdp"},
        policy={"normCap": 1.0, "dataClass": "internal", "maxEpsilon": 10.0},
    )
    observer = ScrapeEachRound()
    run = LocalRun(load_manifest(path), run_options(path, tmp_path, metrics_port=0), observer)
    observer.run = run
    report = run.execute()
    assert report.status == "succeeded", report.failure
    first, second, third = observer.scrapes[:3]

    def rounds(s: Samples) -> float | None:
        return value(s, "fedsilo_rounds_total", job=JOB, outcome="completed")

    # The process-wide registry may hold earlier tests' figures: compare differences only.
    assert rounds(second) == rounds(first) + 1 and rounds(third) == rounds(second) + 1
    assert (
        value(third, "fedsilo_round_duration_seconds_count", job=JOB)
        == value(first, "fedsilo_round_duration_seconds_count", job=JOB) + 2
    )
    assert value(third, "fedsilo_job_running", job=JOB) == 1
    assert value(third, "fedsilo_job_last_progress_timestamp_seconds", job=JOB) > value(
        first, "fedsilo_job_last_progress_timestamp_seconds", job=JOB
    )

    for silo in SILOS:
        for direction in ("up", "down"):
            assert value(second, "fedsilo_silo_bytes_total", job=JOB, silo=silo, direction=direction) > value(
                first, "fedsilo_silo_bytes_total", job=JOB, silo=silo, direction=direction
            )
        accepted = [
            value(s, "fedsilo_silo_rounds_total", job=JOB, silo=silo, outcome="accepted") for s in (first, third)
        ]
        assert accepted[1] == accepted[0] + 2
        latency = [value(s, "fedsilo_silo_update_latency_seconds_count", job=JOB, silo=silo) for s in (first, third)]
        assert latency[1] == latency[0] + 2
        # Silo-level DP: each accepted round spends more of the job's budget of 10.
        spent = [value(s, "fedsilo_silo_epsilon", job=JOB, silo=silo) for s in (first, second)]
        assert 0 < spent[0] < spent[1]
        remaining = value(second, "fedsilo_silo_epsilon_remaining", job=JOB, silo=silo)
        assert remaining == pytest.approx(10.0 - spent[1])
        distance = value(third, "fedsilo_silo_update_distance", job=JOB, silo=silo)
        assert distance is not None and distance > 0
        assert -1.0 <= value(third, "fedsilo_silo_update_cosine", job=JOB, silo=silo) <= 1.0

    # Round 2's silos evaluated round 1's model (signed reports): per-silo accuracy, mean, spread.
    assert value(second, "fedsilo_model_evaluated_round", job=JOB) == 1
    assert value(third, "fedsilo_model_evaluated_round", job=JOB) == 2
    accuracies = [value(third, "fedsilo_silo_model_accuracy_ratio", job=JOB, silo=s) for s in SILOS]
    assert all(a is not None and 0.0 <= a <= 1.0 for a in accuracies)
    spread = value(third, "fedsilo_model_accuracy_spread_ratio", job=JOB)
    assert spread == pytest.approx(max(accuracies) - min(accuracies))  # type: ignore[type-var]
    assert 0.0 <= value(third, "fedsilo_model_accuracy_ratio", job=JOB) <= 1.0
    decisions = [value(s, "fedsilo_policy_decisions_total", job=JOB, outcome="allow") for s in (first, third)]
    assert decisions[1] == decisions[0] + 6
