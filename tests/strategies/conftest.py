"""Two silos' local models of a tiny two-tensor model, and the mean update secure aggregation would give."""

from __future__ import annotations

from typing import Any

import numpy as np

from fedsilo.api import FederatedJobSpec
from fedsilo.protocol import Weights
from fedsilo_testing.simulation import mean_update as mean_update

from ..datasets.conftest import job_spec

GLOBAL: Weights = {"w": np.array([1.0, 2.0], np.float32), "b": np.array([0.5], np.float32)}
# (local model, number of training records)
LOCALS: list[tuple[Weights, int]] = [
    ({"w": np.array([2.0, 2.0], np.float32), "b": np.array([1.0], np.float32)}, 1),
    ({"w": np.array([1.0, 6.0], np.float32), "b": np.array([0.5], np.float32)}, 3),
]


def strategy_spec(**strategy: Any) -> FederatedJobSpec:
    return job_spec(
        seed=11,
        strategy=strategy,
        training={"localEpochs": 3, "batchSize": 16, "learningRate": 0.1, "momentum": 0.5, "weightDecay": 0.001},
    )
