"""On a label-skewed split the federated model is worse for its worst silo than on average, and
personalization (a private head, local fine-tuning) lifts that worst silo.

The jobs run in one process with the trainer's own clients, the hub's strategy and quality
figures (``fedsilo_testing.personalization``); ``tests/e2e/test_personalized_run.py`` runs
personalization through a real local run.
"""

from __future__ import annotations

from typing import Any

import pytest

from fedsilo_testing.personalization import Simulated, job_spec, simulate

BASE: dict[str, Any] = {
    "silos": ["a", "b", "c", "d", "e"],
    "minSilos": 2,
    "rounds": 8,
    "seed": 0,
    "model": {"builtin": "mlp"},
    "data": {"source": "digits", "partition": {"scheme": "dirichlet", "alpha": 0.1}},
    "aggregation": {"mode": "plain"},
}


@pytest.fixture(scope="module")
def federated() -> Simulated:
    return simulate(job_spec(**BASE))


def test_a_label_skewed_split_leaves_its_worst_silo_well_below_the_mean(federated: Simulated) -> None:
    quality = federated.federated
    assert quality.worst_accuracy < quality.mean_accuracy - 0.1
    assert quality.accuracy_std > 0.05


@pytest.mark.parametrize(
    "personalization",
    [{"privateHead": True}, {"fineTuneEpochs": 3}, {"privateHead": True, "fineTuneEpochs": 3}],
    ids=["fedper", "fine-tune", "fedper+fine-tune"],
)
def test_personalization_lifts_the_worst_silo(federated: Simulated, personalization: dict[str, Any]) -> None:
    result = simulate(job_spec(**BASE, personalization=personalization))
    after = result.personalized or result.federated
    assert after.worst_accuracy > federated.federated.worst_accuracy + 0.1
    assert after.accuracy_std < federated.federated.accuracy_std
