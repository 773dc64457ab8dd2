"""FedAvg and FedAdam turn the mean update into exactly the model their papers define."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from fedsilo.strategies import FedAdam, FedAvg, make_strategy

from .conftest import GLOBAL, LOCALS, mean_update, strategy_spec

# Mean update by hand: w = (1*[1, 0] + 3*[0, 4]) / 4, b = (1*0.5 + 3*0) / 4.
DELTA_W, DELTA_B = [0.25, 3.0], 0.125


def test_the_mean_update_of_the_example_is_the_hand_computed_one() -> None:
    update = mean_update(GLOBAL, LOCALS)
    assert update["w"].tolist() == DELTA_W
    assert update["b"].tolist() == [DELTA_B]


def test_fedavg_with_server_rate_one_is_the_sample_weighted_mean_of_the_local_models() -> None:
    new = FedAvg(strategy_spec(name="fedavg")).aggregate(GLOBAL, mean_update(GLOBAL, LOCALS))
    # (1*[2, 2] + 3*[1, 6]) / 4 and (1*1 + 3*0.5) / 4
    assert new["w"].tolist() == [1.25, 5.0]
    assert new["b"].tolist() == [0.625]
    assert list(new) == list(GLOBAL)
    assert all(v.dtype == np.float32 for v in new.values())


def test_fedavg_scales_the_step_by_the_server_learning_rate() -> None:
    new = FedAvg(strategy_spec(name="fedavg", serverLearningRate=0.5)).aggregate(GLOBAL, mean_update(GLOBAL, LOCALS))
    assert new["w"].tolist() == [1.0 + 0.5 * 0.25, 2.0 + 0.5 * 3.0]
    assert new["b"].tolist() == [0.5 + 0.5 * 0.125]


def adam_by_hand(x: float, d: float, steps: int, eta: float, b1: float, b2: float, tau: float) -> float:
    m = v = 0.0
    for _ in range(steps):
        m = b1 * m + (1 - b1) * d
        v = b2 * v + (1 - b2) * d * d
        x = x + eta * m / (math.sqrt(v) + tau)
    return x


def test_fedadam_follows_reddi_et_al_over_several_rounds() -> None:
    spec = strategy_spec(name="fedadam", serverLearningRate=0.1, beta1=0.9, beta2=0.99, tau=0.001)
    strategy = FedAdam(spec)
    model = GLOBAL
    update = mean_update(GLOBAL, LOCALS)
    for _ in range(3):
        model = strategy.aggregate(model, update)
    expected_w = [adam_by_hand(x, d, 3, 0.1, 0.9, 0.99, 0.001) for x, d in zip([1.0, 2.0], DELTA_W, strict=True)]
    assert model["w"] == pytest.approx(expected_w, rel=1e-6)
    assert model["b"] == pytest.approx([adam_by_hand(0.5, DELTA_B, 3, 0.1, 0.9, 0.99, 0.001)], rel=1e-6)
    # First step by hand, written out: m = 0.1 d, v = 0.01 d^2, x += 0.1 * m / (sqrt(v) + 0.001).
    first = FedAdam(spec).aggregate(GLOBAL, update)
    assert first["w"][1] == pytest.approx(2.0 + 0.1 * 0.3 / (0.3 + 0.001), rel=1e-6)


def test_fedadam_moves_each_coordinate_by_about_eta_whatever_its_scale() -> None:
    # The adaptive step: a small and a huge update move the model by nearly the same amount.
    new = FedAdam(strategy_spec(name="fedadam", serverLearningRate=0.01)).aggregate(
        {"w": np.zeros(2, np.float32)}, {"w": np.array([1.0, 1000.0], np.float32)}
    )
    assert new["w"] == pytest.approx([0.01, 0.01], rel=0.02)


def test_aggregate_leaves_its_inputs_untouched() -> None:
    update = mean_update(GLOBAL, LOCALS)
    for name in ("fedavg", "fedprox", "fedadam"):
        make_strategy(strategy_spec(name=name)).aggregate(GLOBAL, update)
    assert GLOBAL["w"].tolist() == [1.0, 2.0]
    assert update["w"].tolist() == DELTA_W


def test_fedavg_steps_into_one_array_per_tensor() -> None:
    # At 100M parameters each extra float32 temporary is 381 MiB of the hub's peak; an allocation
    # count, not a timing: the step holds the new model and nothing beside it.
    model = {"w": np.ones(4_000_000, np.float32)}
    update = {"w": np.full(4_000_000, 0.5, np.float32)}
    tracemalloc.start()
    try:
        new = FedAvg(strategy_spec(name="fedavg", serverLearningRate=0.5)).aggregate(model, update)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert new["w"].dtype == np.float32 and float(new["w"][0]) == 1.25
    assert peak < new["w"].nbytes * 1.25, f"{peak} bytes to build a {new['w'].nbytes}-byte model"
