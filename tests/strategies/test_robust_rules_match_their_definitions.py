"""Each robust rule's step on random and crafted updates equals its paper's definition, written out by hand.

The references below compute every definition the slow, obvious way (loops over
coordinates and pairs); the strategies are vectorized. Seeded random cases stand in for
property-based generation: many shapes, silo counts and parameters, reproducibly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from fedsilo.api import FederatedJobSpec
from fedsilo.protocol import Weights
from fedsilo.strategies import CenteredClipping, Median, MultiKrum, RobustStrategy, TrimmedMean, make_strategy

from ..datasets.conftest import job_spec
from .conftest import GLOBAL

Matrix = npt.NDArray[np.float64]


def median_by_hand(updates: Matrix) -> list[float]:
    out = []
    for column in updates.T:
        values = sorted(column.tolist())
        n = len(values)
        out.append(values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2)
    return out


def trimmed_mean_by_hand(updates: Matrix, fraction: float) -> list[float]:
    n = updates.shape[0]
    k = math.floor(fraction * n)
    return [sum(sorted(column.tolist())[k : n - k]) / (n - 2 * k) for column in updates.T]


def multikrum_by_hand(updates: Matrix, f: int, m: int) -> list[float]:
    n = updates.shape[0]
    scores = []
    for i in range(n):
        distances = sorted(float(((updates[i] - updates[j]) ** 2).sum()) for j in range(n) if j != i)
        scores.append(sum(distances[: n - f - 2]))
    chosen = sorted(range(n), key=lambda i: (scores[i], i))[:m]
    return [sum(updates[i][c] for i in chosen) / m for c in range(updates.shape[1])]


def centered_clipping_by_hand(updates: Matrix, center: Matrix, tau: float, iterations: int) -> Matrix:
    v = center.copy()
    for _ in range(iterations):
        total = np.zeros_like(v)
        for x in updates:
            d = x - v
            norm = math.sqrt(float((d * d).sum()))
            total += d * (min(1.0, tau / norm) if norm > 0 else 1.0)
        v = v + total / len(updates)
    return v


def random_cases(count: int, seed: int) -> Iterator[tuple[Matrix, np.random.Generator]]:
    """``count`` update matrices: 3 to 12 silos, 1 to 40 coordinates, some with outliers and ties."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n, d = int(rng.integers(3, 13)), int(rng.integers(1, 41))
        updates = rng.normal(0.0, 1.0, (n, d))
        if rng.random() < 0.5:  # a few attackers far away
            updates[: int(rng.integers(1, max(2, n // 3)))] *= float(rng.choice([-50.0, 100.0]))
        if rng.random() < 0.2:  # ties in every coordinate
            updates[1] = updates[0]
        yield updates, rng


def spec_for(name: str, **strategy: Any) -> FederatedJobSpec:
    """A plain-aggregation job of 12 silos (enough for Multi-Krum's every case) naming strategy ``name``."""
    return job_spec(silos=12, minSilos=12, aggregation={"mode": "plain"}, strategy={"name": name, **strategy})


def test_the_median_is_the_middle_value_of_every_coordinate() -> None:
    for updates, _ in random_cases(60, seed=1):
        rule = Median(spec_for("median"))
        assert np.allclose(rule.combine(updates), median_by_hand(updates), rtol=0, atol=1e-12)


def test_the_trimmed_mean_drops_k_values_at_each_end() -> None:
    for updates, rng in random_cases(60, seed=2):
        fraction = float(rng.uniform(0.0, 0.49))
        rule = TrimmedMean(spec_for("trimmed_mean", trimFraction=fraction))
        assert np.allclose(rule.combine(updates), trimmed_mean_by_hand(updates, fraction), rtol=1e-12, atol=1e-12)


def test_a_zero_trim_fraction_is_the_plain_mean() -> None:
    updates = np.array([[1.0, -2.0], [3.0, 8.0], [5.0, 0.0]])
    assert TrimmedMean(spec_for("trimmed_mean", trimFraction=0.0)).combine(updates).tolist() == [3.0, 2.0]


def test_multikrum_averages_the_m_updates_closest_to_their_neighbours() -> None:
    for updates, rng in random_cases(60, seed=3):
        n = updates.shape[0]
        f = int(rng.integers(0, (n - 3) // 2 + 1))
        m = int(rng.integers(1, n - f + 1))
        rule = MultiKrum(spec_for("multikrum", byzantineSilos=f, krumSelected=m))
        assert np.allclose(rule.combine(updates), multikrum_by_hand(updates, f, m), rtol=1e-9, atol=1e-9)


def test_multikrum_defaults_to_averaging_n_minus_f_updates() -> None:
    updates = np.array([[0.0], [0.1], [0.2], [0.3], [100.0]])
    rule = MultiKrum(spec_for("multikrum", byzantineSilos=1))
    assert rule.combine(updates).tolist() == pytest.approx([0.15])


def test_multikrum_refuses_fewer_updates_than_its_guarantee_needs() -> None:
    rule = MultiKrum(spec_for("multikrum", byzantineSilos=1))
    with pytest.raises(ValueError, match="needs at least 5 updates, got 4"):
        rule.combine(np.zeros((4, 2)))


def test_centered_clipping_moves_the_center_by_the_clipped_mean_each_iteration() -> None:
    for updates, rng in random_cases(60, seed=4):
        tau, iterations = float(rng.uniform(0.05, 5.0)), int(rng.integers(1, 6))
        rule = CenteredClipping(spec_for("centered_clipping", clippingRadius=tau, clippingIterations=iterations))
        first = rule.combine(updates)
        expected = centered_clipping_by_hand(updates, np.zeros(updates.shape[1]), tau, iterations)
        assert np.allclose(first, expected, rtol=1e-12, atol=1e-12)
        # The next round starts from this round's step.
        again = updates[::-1] * 0.5
        assert np.allclose(
            rule.combine(again), centered_clipping_by_hand(again, expected, tau, iterations), rtol=1e-12, atol=1e-12
        )


def test_one_huge_update_moves_the_clipped_center_by_at_most_tau_over_n_per_iteration() -> None:
    honest = np.zeros((4, 3))
    attacked = np.vstack([honest, [[1e9, -1e9, 1e9]]])
    step = CenteredClipping(spec_for("centered_clipping", clippingRadius=2.0, clippingIterations=3)).combine(attacked)
    assert np.linalg.norm(step) <= 3 * 2.0 / 5 + 1e-9


@pytest.mark.parametrize("name", ["median", "trimmed_mean", "multikrum", "centered_clipping"])
def test_a_robust_step_moves_the_global_model_by_the_server_rate(name: str) -> None:
    # A radius above the updates' norm: centered clipping's first iteration reaches their mean.
    strategy = make_strategy(spec_for(name, serverLearningRate=0.5, byzantineSilos=0, clippingRadius=10.0))
    assert isinstance(strategy, RobustStrategy)
    update: Weights = {"w": np.array([1.0, 1.0], np.float32), "b": np.array([0.0], np.float32)}
    new = strategy.aggregate_updates(GLOBAL, [update] * 3)
    # Equal updates: every rule's step is that update, scaled by the server rate.
    assert new["w"].tolist() == [1.0 + 0.5, 2.0 + 0.5]
    assert new["b"].tolist() == [0.5]
    assert list(new) == list(GLOBAL) and all(v.dtype == np.float32 for v in new.values())


def test_a_robust_strategy_refuses_the_mean_alone() -> None:
    with pytest.raises(TypeError, match="needs each silo's update"):
        Median(spec_for("median")).aggregate(GLOBAL, GLOBAL)


def test_a_robust_strategy_names_the_tensor_an_update_lacks() -> None:
    with pytest.raises(ValueError, match="lacks tensor 'b'"):
        Median(spec_for("median")).aggregate_updates(GLOBAL, [{"w": np.zeros(2, np.float32)}] * 3)


def test_a_robust_strategy_refuses_an_empty_round() -> None:
    with pytest.raises(ValueError, match="got no update"):
        Median(spec_for("median")).aggregate_updates(GLOBAL, [])
