"""Each strategy plans the round the job asks for; FedProx adds its proximal term."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest

from fedsilo.strategies import DpSgdConfig, FedAdam, FedAvg, FedProx, FitConfig, make_strategy

from .conftest import GLOBAL, strategy_spec


def test_fedavg_plans_the_jobs_local_training_without_a_proximal_term() -> None:
    config = FedAvg(strategy_spec(name="fedavg")).configure_round(4)
    assert config == FitConfig(
        round=4, local_epochs=3, batch_size=16, learning_rate=0.1, momentum=0.5, weight_decay=0.001, seed=11
    )
    assert config.proximal_mu == 0.0
    assert config.dp is None


def test_fedprox_adds_the_jobs_mu_to_the_same_plan() -> None:
    spec = strategy_spec(name="fedprox", proximalMu=0.3)
    config = FedProx(spec).configure_round(4)
    assert config.proximal_mu == 0.3
    assert config.local_epochs == 3 and config.learning_rate == 0.1


@pytest.mark.parametrize(("name", "kind"), [("fedavg", FedAvg), ("fedprox", FedProx), ("fedadam", FedAdam)])
def test_make_strategy_builds_the_named_strategy(name: str, kind: type) -> None:
    assert type(make_strategy(strategy_spec(name=name))) is kind


def test_a_fit_configuration_survives_its_json_document() -> None:
    # The hub sends asdict(config) to the trainers, which rebuild it field by field.
    config = FitConfig(round=2, local_epochs=1, batch_size=8, learning_rate=0.1, dp=DpSgdConfig(1.1, 1.0, 1e-5))
    document = asdict(config)
    assert FitConfig(**{**document, "dp": DpSgdConfig(**document["dp"])}) == config


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"w": np.zeros(2, np.float32)}, r"lacks tensor 'b'"),
        ({**GLOBAL, "extra": np.zeros(1, np.float32)}, r"tensors the model lacks: \['extra'\]"),
        (
            {"w": np.zeros(3, np.float32), "b": np.zeros(1, np.float32)},
            r"tensor 'w' of the mean update has shape \(3,\)",
        ),
        ({"w": np.array([0, np.nan], np.float32), "b": np.zeros(1, np.float32)}, r"tensor 'w' .* NaN"),
    ],
)
@pytest.mark.parametrize("name", ["fedavg", "fedadam"])
def test_a_mean_update_that_does_not_fit_the_model_is_refused(name: str, update: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_strategy(strategy_spec(name=name)).aggregate(GLOBAL, update)


def test_the_hub_plans_rounds_without_importing_torch() -> None:
    # Strategies sit below the trainer: the aggregator must not pay for (or depend on) torch.
    probe = "import sys, fedsilo.strategies; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0
