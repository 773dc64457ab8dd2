"""Silo-level noise: each silo adds sigma*C/sqrt(minSilos), so the sum over minSilos silos carries
std sigma*C exactly, and over more silos never less."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from fedsilo.privacy import add_silo_noise, noise_generator, silo_noise_std

DIMENSION = 200_000


def _noise_in_sum(silos: int, std: float, seed: int) -> NDArray[np.float64]:
    """Sum of ``silos`` noisy (clipped) updates minus the sum of the updates themselves."""
    rng = np.random.default_rng(seed)
    noise = np.zeros(DIMENSION)
    for _ in range(silos):
        update = rng.uniform(-0.01, 0.01, DIMENSION)
        noise += add_silo_noise(update, std, rng) - update
    return noise


def test_the_per_silo_std_is_the_share_of_the_quorum() -> None:
    assert silo_noise_std(1.2, 5.0, 4) == pytest.approx(1.2 * 5.0 / 2)


@pytest.mark.parametrize("min_silos", [1, 3, 10])
def test_the_sum_over_the_quorum_has_std_sigma_times_the_norm_cap(min_silos: int) -> None:
    sigma, cap = 1.1, 2.0
    noise = _noise_in_sum(min_silos, silo_noise_std(sigma, cap, min_silos), seed=min_silos)
    # The sample std of 200k normals is within 0.5% of the true one with overwhelming odds.
    assert noise.std() == pytest.approx(sigma * cap, rel=0.005)
    assert abs(noise.mean()) < 5 * sigma * cap / math.sqrt(DIMENSION)


def test_a_sum_over_more_silos_than_the_quorum_has_more_noise() -> None:
    sigma, cap = 1.1, 2.0
    noise = _noise_in_sum(5, silo_noise_std(sigma, cap, 3), seed=11)
    assert noise.std() == pytest.approx(sigma * cap * math.sqrt(5 / 3), rel=0.005)
    assert noise.std() > sigma * cap


def test_noise_is_float64_and_keeps_the_shape() -> None:
    noisy = add_silo_noise(np.zeros((3, 4), dtype=np.float32), 0.5, np.random.default_rng(0))
    assert noisy.dtype == np.float64
    assert noisy.shape == (3, 4)


def test_production_generators_draw_different_noise() -> None:
    assert not np.array_equal(
        add_silo_noise(np.zeros(8), 1.0, noise_generator()), add_silo_noise(np.zeros(8), 1.0, noise_generator())
    )


@pytest.mark.parametrize(
    ("noise_multiplier", "norm_cap", "min_silos"), [(0.0, 1.0, 2), (1.0, -1.0, 2), (1.0, 1.0, 0), (float("nan"), 1, 2)]
)
def test_settings_that_would_add_no_noise_are_refused(noise_multiplier: float, norm_cap: float, min_silos: int) -> None:
    with pytest.raises(ValueError):
        silo_noise_std(noise_multiplier, norm_cap, min_silos)


def test_zero_noise_is_refused() -> None:
    with pytest.raises(ValueError, match="std"):
        add_silo_noise(np.zeros(3), 0.0, np.random.default_rng(0))
