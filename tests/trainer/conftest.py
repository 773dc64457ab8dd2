"""One silo's digits data and clients built on it, as the trainer process builds them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import SiloData, load_silo_data
from fedsilo.protocol import Weights
from fedsilo.trainer import FitConfig, TorchClassifierClient, build_client

from ..datasets.conftest import job_spec


def fit_config(**changes: Any) -> FitConfig:
    """The quickstart's local training, with ``changes``."""
    return FitConfig(**{"round": 1, "local_epochs": 1, "batch_size": 32, "learning_rate": 0.05, "seed": 7} | changes)


def distance(a: Weights, b: Weights) -> float:
    """L2 distance between two models."""
    return float(np.sqrt(sum(float(((a[k] - b[k]) ** 2).sum()) for k in a)))


@pytest.fixture(scope="session")
def spec() -> FederatedJobSpec:
    return job_spec(seed=7, data={"source": "digits", "partition": {"scheme": "dirichlet", "alpha": 0.5}})


@pytest.fixture(scope="session")
def data(spec: FederatedJobSpec) -> SiloData:
    return load_silo_data(spec, 0, 3)


@pytest.fixture
def client(spec: FederatedJobSpec, data: SiloData) -> TorchClassifierClient:
    built = build_client(spec, data)
    assert isinstance(built, TorchClassifierClient)
    return built
