"""Fixed-point encoding into Z_2^32: clipping, rounding, NaN, the weight word, and no overflow."""

from __future__ import annotations

import numpy as np
import pytest

from fedsilo.secagg import FixedPointError, choose_fractional_bits, decode_sum, encode


@pytest.mark.parametrize(("clip", "bound"), [(4.0, 10_000), (1.0, 1), (0.01, 10**6), (1000.0, 100), (4.0, 2**20)])
def test_the_chosen_bits_are_the_most_that_cannot_overflow(clip: float, bound: int) -> None:
    bits = choose_fractional_bits(clip, bound)
    # Worst case: every record at the clip range, split over as many silos as records.
    weights = [bound] if bound < 10 else [bound // 2, bound - bound // 2]
    total = sum(
        encode(np.full(3, clip, np.float32), w, clip, bits, len(weights)).astype(np.int64)[:-1] for w in weights
    )
    assert np.all(total <= 2**31 - 1)
    lowest = sum(
        encode(np.full(3, -clip, np.float32), w, clip, bits, len(weights)).view(np.int32).astype(np.int64)[:-1]
        for w in weights
    )
    assert np.all(lowest >= -(2**31))
    if bits < 31:
        assert clip * bound * 2.0 ** (bits + 1) > 2**31 - 1 - bound  # one more bit would not fit


def test_bounds_that_overflow_even_without_fractional_bits_are_refused() -> None:
    with pytest.raises(FixedPointError, match=r"lower spec\.aggregation\.clipRange"):
        choose_fractional_bits(1e6, 10**4)
    with pytest.raises(FixedPointError):
        choose_fractional_bits(0.0, 10)


def test_values_are_clipped_scaled_and_rounded_with_the_weight_last() -> None:
    values = np.array([0.5, -0.25, 100.0, -np.inf, np.inf, 1.0 / 3], dtype=np.float32)
    out = encode(values, 3, 2.0, 4, 10)
    as_int = out.view(np.int32)
    assert as_int[:-1].tolist() == [24, -12, 96, -96, 96, 16]
    assert out[-1] == 3


def test_nan_is_refused() -> None:
    with pytest.raises(FixedPointError, match="NaN"):
        encode(np.array([1.0, np.nan], np.float32), 1, 4.0, 8, 3)


def test_weights_are_checked() -> None:
    with pytest.raises(FixedPointError, match=r"outside 1\.\."):
        encode(np.zeros(2, np.float32), 0, 4.0, 8, 3)
    with pytest.raises(FixedPointError, match=r"outside 1\.\."):
        encode(np.zeros(2, np.float32), 2**31 // 3 + 1, 4.0, 0, 3)
    with pytest.raises(FixedPointError, match="overflows 32 bits"):
        encode(np.zeros(2, np.float32), 2**20, 4.0, 16, 3)


def test_a_sum_decodes_to_floats_and_the_total_weight() -> None:
    a = encode(np.array([1.5, -2.0], np.float32), 10, 4.0, 8, 2)
    b = encode(np.array([-0.5, 0.25], np.float32), 30, 4.0, 8, 2)
    values, weight = decode_sum(a + b, 4.0, 8)
    assert weight == 40
    np.testing.assert_allclose(values, [15 - 15, -20 + 7.5])


def test_a_sum_whose_weight_exceeds_what_the_bits_allow_is_refused() -> None:
    total = np.zeros(3, np.uint32)
    total[-1] = 2**20
    with pytest.raises(FixedPointError, match="the sum may have wrapped"):
        decode_sum(total, 4.0, 16)
