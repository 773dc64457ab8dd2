"""The plain-mode anomaly signal: an update's L2 distance and cosine to the step the model took."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedsilo.aggregator import update_distances


def test_an_update_equal_to_the_step_is_at_distance_zero_and_cosine_one() -> None:
    step = np.array([3.0, 4.0])
    assert update_distances(step.copy(), step) == (0.0, pytest.approx(1.0))


def test_a_sign_flipped_update_has_cosine_minus_one_and_twice_the_norm_away() -> None:
    step = np.array([3.0, 4.0])
    distance, cosine = update_distances(-step, step)
    assert distance == pytest.approx(10.0)
    assert cosine == pytest.approx(-1.0)


def test_orthogonal_updates_have_cosine_zero() -> None:
    distance, cosine = update_distances(np.array([0.0, 2.0]), np.array([1.0, 0.0]))
    assert distance == pytest.approx(math.sqrt(5.0))
    assert cosine == pytest.approx(0.0)


def test_a_zero_update_or_step_has_no_cosine() -> None:
    assert update_distances(np.zeros(3), np.ones(3)) == (pytest.approx(math.sqrt(3.0)), None)
    assert update_distances(np.ones(3), np.zeros(3))[1] is None
