"""The clip step works slice by slice: the same update as whole-array float64, without its copies.

A 100M-parameter model's difference is 800 MB in float64; the clip step holds the float32
update it returns and a few slices, so the silo's memory does not multiply with the model.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from fedsilo.sidecar import prepare_update
from fedsilo.sidecar._update import CLIP_SLICE


def whole_array_clip(global_vector: np.ndarray, local: np.ndarray, norm_cap: float, clip_range: float) -> np.ndarray:
    """The clip computed on whole float64 arrays, as the step did before it sliced."""
    delta = local.astype(np.float64) - global_vector.astype(np.float64)
    norm = float(np.linalg.norm(delta))
    if norm > norm_cap:
        delta *= norm_cap / norm
    np.clip(delta, -clip_range, clip_range, out=delta)
    update = delta.astype(np.float32)
    signed = float(np.linalg.norm(update.astype(np.float64)))
    if signed > norm_cap:
        update *= np.float32(norm_cap / signed * (1 - 1e-6))
    return update


@pytest.mark.parametrize("norm_cap", [5.0, 1e9])  # clipped by the norm, and not
def test_a_sliced_clip_equals_the_whole_array_clip(norm_cap: float) -> None:
    rng = np.random.default_rng(4)
    size = 3 * CLIP_SLICE + 11
    global_vector = rng.normal(0, 1, size).astype(np.float32)
    local = global_vector + rng.normal(0, 0.5, size).astype(np.float32)
    local[7] += 50.0  # past the fixed-point range
    prepared = prepare_update(global_vector, local, norm_cap=norm_cap, clip_range=4.0)
    expected = whole_array_clip(global_vector, local, norm_cap, 4.0)
    # Summing the norm slice by slice may round its last bit differently: a float32 ulp at most.
    np.testing.assert_allclose(prepared.delta, expected, rtol=1e-6, atol=0)
    assert prepared.l2_norm == pytest.approx(float(np.linalg.norm(prepared.delta.astype(np.float64))), rel=1e-12)
    assert prepared.l2_norm <= norm_cap
    assert prepared.clipped == (norm_cap < 1e9)


def test_models_of_different_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="global model has 3 values, the local one 4"):
        prepare_update(np.zeros(3, np.float32), np.zeros(4, np.float32), norm_cap=1.0, clip_range=1.0)


def test_clipping_a_large_update_holds_the_update_and_a_few_slices_only() -> None:
    size = 4 << 20  # 16 MiB of float32: one whole-array float64 difference would be 32 MiB more
    rng = np.random.default_rng(5)
    global_vector = rng.normal(0, 1, size).astype(np.float32)
    local = global_vector + np.float32(0.01)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        prepare_update(global_vector, local, norm_cap=1.0, clip_range=4.0)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    # The float32 update plus a handful of float64 slice temporaries.
    assert peak < 4 * size + 8 * 8 * CLIP_SLICE
