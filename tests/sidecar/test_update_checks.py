"""The sidecar checks and clips what its trainer returns; it never trusts the trainer."""

from __future__ import annotations

import numpy as np
import pytest

from fedsilo.protocol import TensorLayout
from fedsilo.sidecar import InvalidUpdate, check_trainer_weights, prepare_update

LAYOUT = TensorLayout.of({"w": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.float32)})


def test_a_nan_update_is_rejected_naming_the_tensor() -> None:
    weights = {"w": np.zeros((2, 3), np.float32), "b": np.array([0, np.nan, np.inf], np.float32)}
    with pytest.raises(InvalidUpdate, match="non_finite: 2 NaN/Inf values, first in tensor 'b'"):
        check_trainer_weights(LAYOUT, weights)


def test_a_wrongly_shaped_update_is_rejected() -> None:
    with pytest.raises(InvalidUpdate, match="shape_mismatch: tensor 'w' has shape"):
        check_trainer_weights(LAYOUT, {"w": np.zeros((3, 2), np.float32), "b": np.zeros(3, np.float32)})
    with pytest.raises(InvalidUpdate, match="shape_mismatch: tensor names differ"):
        check_trainer_weights(LAYOUT, {"w": np.zeros((2, 3), np.float32)})


def test_updates_are_clipped_to_the_norm_cap_and_the_fixed_point_range() -> None:
    global_vector = np.zeros(9, np.float32)
    local = np.full(9, 10.0, np.float32)
    prepared = prepare_update(global_vector, local, norm_cap=3.0, clip_range=4.0)
    assert prepared.clipped
    assert prepared.l2_norm == pytest.approx(3.0, rel=1e-6)
    spiky = np.zeros(9, np.float32)
    spiky[0] = 100.0
    prepared = prepare_update(global_vector, spiky, norm_cap=1000.0, clip_range=4.0)
    assert prepared.delta.max() == pytest.approx(4.0)
    assert prepared.l2_norm == pytest.approx(4.0)


def test_a_small_update_is_left_as_it_is() -> None:
    prepared = prepare_update(np.ones(3, np.float32), np.full(3, 1.5, np.float32), norm_cap=5.0, clip_range=4.0)
    assert not prepared.clipped
    np.testing.assert_allclose(prepared.delta, [0.5, 0.5, 0.5])


def test_the_signed_norm_of_a_clipped_update_never_exceeds_the_cap() -> None:
    # The policy denies a norm above the cap by any margin: float32 rounding must not push it there.
    rng = np.random.default_rng(3)
    for _ in range(200):
        size = int(rng.integers(10, 5000))
        local = rng.normal(0, float(rng.uniform(0.1, 50)), size).astype(np.float32)
        prepared = prepare_update(np.zeros(size, np.float32), local, norm_cap=20.0, clip_range=1e6)
        assert prepared.l2_norm <= 20.0
        assert float(np.linalg.norm(prepared.delta.astype(np.float64))) == prepared.l2_norm
