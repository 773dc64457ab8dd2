"""The hub decodes an unmasked sum slice by slice: the same float32 mean, without a float64 copy of the whole.

``decode_mean`` must give, bit for bit, what decoding the whole sum in float64
(``decode_sum``), dividing it by the signed weight and rounding to float32 gave, at lengths that
cut the slices unevenly and at the edges of the signed 32-bit range; ``decoded_norm`` must be
the norm of that whole decoding. The last test bounds what decoding allocates (tracemalloc
counts allocations, not time).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import numpy.typing as npt
import pytest

from fedsilo.secagg import decode_mean, decode_sum, decoded_norm
from fedsilo.secagg._fixed_point import DECODE_SLICE

LENGTHS = [1, 2, DECODE_SLICE - 1, DECODE_SLICE, DECODE_SLICE + 1, 3 * DECODE_SLICE + 7]
EDGES = np.array([0, 1, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1], dtype=np.uint32)


def _whole_mean(total: npt.NDArray[np.uint32], bits: int, divisor: float) -> npt.NDArray[np.float32]:
    """What the hub computed before: the whole float64 decoding, divided in place, then rounded to float32."""
    decoded, _ = decode_sum(total, bits)
    decoded /= divisor
    return decoded.astype(np.float32)


def _sum(length: int, seed: int) -> npt.NDArray[np.uint32]:
    """A random unmasked sum of ``length`` values and a weight word, with the range's edges in it."""
    words = np.random.default_rng(seed).integers(0, 2**32, length + 1, dtype=np.uint32)
    words[: min(EDGES.size, length)] = EDGES[: min(EDGES.size, length)]
    return words


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize(("bits", "divisor"), [(1, 1.0), (16, 3.0), (24, 1e-3), (24, 7_000_001.0), (8, 150.5)])
def test_the_sliced_mean_is_the_whole_decodings_mean_bit_for_bit(length: int, bits: int, divisor: float) -> None:
    total = _sum(length, seed=length + bits)
    mean = decode_mean(total, bits, divisor)
    assert mean.dtype == np.float32 and mean.shape == (length,)
    np.testing.assert_array_equal(mean.view(np.uint32), _whole_mean(total, bits, divisor).view(np.uint32))


def test_the_edges_of_the_signed_range_decode_to_their_values() -> None:
    total = np.append(EDGES, np.uint32(7))
    np.testing.assert_array_equal(
        decode_mean(total, 0, 1.0), np.array([0, 1, 2**31 - 1, -(2**31), -(2**31) + 1, -1], dtype=np.float32)
    )


@pytest.mark.parametrize("length", LENGTHS)
def test_the_sliced_norm_is_the_whole_decodings_norm(length: int) -> None:
    total = _sum(length, seed=length)
    decoded, _ = decode_sum(total, 20)
    assert decoded_norm(total, 20) == pytest.approx(float(np.linalg.norm(decoded)), rel=1e-12)


def test_an_empty_sum_has_no_values_and_norm_zero() -> None:
    total = np.array([5], dtype=np.uint32)
    assert decode_mean(total, 16, 5.0).size == 0
    assert decoded_norm(total, 16) == 0.0


def test_decoding_a_10m_word_sum_allocates_the_mean_and_one_slice() -> None:
    total = _sum(10_000_000, seed=3)
    mean_bytes = (total.size - 1) * 4
    tracemalloc.start()
    try:
        mean = decode_mean(total, 16, 3.0)
        norm = decoded_norm(total, 16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert mean.size == total.size - 1 and norm > 0
    # The whole decoding held the float64 sum and then its float32 copy: three times the mean.
    assert peak < mean_bytes + 4 * DECODE_SLICE * 8
