"""Local training with the built-in models learns, reports what it did, and is reproducible."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import SiloData, load_silo_data
from fedsilo.trainer import DpSgdConfig, EvaluateConfig, TorchClassifierClient, build_client, initial_weights

from ..datasets.conftest import job_spec
from .conftest import distance, fit_config


@pytest.mark.parametrize(
    "model", [{"builtin": "logistic_regression"}, {"builtin": "mlp", "hiddenSizes": [32, 16]}, {"builtin": "cnn"}]
)
def test_fitting_lowers_the_loss_of_every_builtin_model(model: dict[str, object], data: SiloData) -> None:
    client = build_client(job_spec(model=model), data)
    before = client.evaluate(EvaluateConfig(round=0))
    result = client.fit(fit_config(local_epochs=3, momentum=0.9))
    after = client.evaluate(EvaluateConfig(round=1))
    assert after.loss < 0.7 * before.loss
    assert after.accuracy > before.accuracy
    assert result.train_loss < before.loss


def test_the_fit_result_counts_records_and_optimizer_steps(client: TorchClassifierClient, data: SiloData) -> None:
    result = client.fit(fit_config(local_epochs=2, batch_size=50))
    records = len(data.train_y)
    assert result.num_samples == records
    assert result.steps == 2 * math.ceil(records / 50)
    assert result.batch_size == 50
    assert result.sample_rate == pytest.approx(50 / records)
    assert 0.0 <= result.metrics["train_accuracy"] <= 1.0
    assert result.noise_multiplier is None


def test_evaluation_scores_the_held_out_split(client: TorchClassifierClient, data: SiloData) -> None:
    result = client.evaluate(EvaluateConfig(round=0))
    assert result.num_samples == len(data.test_y)
    assert 0.0 <= result.accuracy <= 1.0
    assert result.loss > 0


def test_every_silo_and_the_hub_start_from_the_same_weights(spec: FederatedJobSpec) -> None:
    first, second = initial_weights(spec, load_silo_data(spec, 0, 3)), initial_weights(spec, load_silo_data(spec, 2, 3))
    assert list(first) == list(second)
    assert distance(first, second) == 0.0


def test_the_same_round_on_the_same_silo_trains_identically(spec: FederatedJobSpec, data: SiloData) -> None:
    a, b = build_client(spec, data), build_client(spec, data)
    a.fit(fit_config(round=3))
    b.fit(fit_config(round=3))
    assert distance(a.get_weights(), b.get_weights()) == 0.0


def test_silos_and_rounds_shuffle_differently(spec: FederatedJobSpec, data: SiloData) -> None:
    start = build_client(spec, data).get_weights()

    def trained(silo_index: int, round_number: int) -> dict[str, np.ndarray]:
        client = build_client(spec, SiloData(**{**data.__dict__, "silo_index": silo_index}))
        client.set_weights(start)
        client.fit(fit_config(round=round_number))
        return client.get_weights()

    assert distance(trained(0, 1), trained(1, 1)) > 0
    assert distance(trained(0, 1), trained(0, 2)) > 0


def test_training_that_diverges_says_which_setting_to_lower(client: TorchClassifierClient) -> None:
    with pytest.raises(ValueError, match=r"diverged in round 1 .* lower spec\.training\.learningRate"):
        client.fit(fit_config(learning_rate=1e30))


def test_a_round_that_asks_for_dp_sgd_runs_it_and_reports_what_the_sidecar_charges(
    client: TorchClassifierClient, data: SiloData
) -> None:
    before = client.get_weights()
    config = fit_config(dp=DpSgdConfig(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5))
    result = client.fit(config)
    assert distance(before, client.get_weights()) > 0
    records = len(data.train_y)
    batches = math.ceil(records / config.batch_size)
    # Opacus' Poisson loader: every record joins a batch with probability 1/len(loader), len(loader) times an epoch.
    assert result.sample_rate == pytest.approx(1 / batches)
    assert result.steps == config.local_epochs * batches
    assert (result.noise_multiplier, result.max_grad_norm, result.num_samples) == (1.0, 1.0, records)
    # The model is free of Opacus' hooks afterwards: the next round wraps it again.
    client.set_weights(before)
    assert client.fit(config).steps == result.steps


def test_fedprox_is_refused_under_dp_sgd_rather_than_silently_dropped(client: TorchClassifierClient) -> None:
    with pytest.raises(ValueError, match="proximal term does not combine with DP-SGD"):
        client.fit(fit_config(proximal_mu=0.1, dp=DpSgdConfig(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5)))
