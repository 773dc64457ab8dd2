"""The quantizer: unbiased, never off by more than one step, and sums that fit the modulus it sizes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsilo.compression import (
    CompressionError,
    dequantize,
    dequantize_sum,
    headroom_bits,
    max_silos,
    quantize,
    step,
    sum_word_bits,
)

BITS = st.sampled_from([2, 4, 8, 16])
RANGE = st.floats(min_value=1e-3, max_value=1e3)


@settings(max_examples=60)
@given(bits=BITS, value_range=RANGE, seed=st.integers(0, 2**32 - 1), fraction=st.floats(-1.0, 1.0))
def test_one_rounding_is_off_by_less_than_one_step(bits: int, value_range: float, seed: int, fraction: float) -> None:
    values = np.random.default_rng(seed).uniform(-value_range, value_range, 257)
    values[0] = fraction * value_range
    levels = quantize(values, bits, value_range, np.random.default_rng(seed + 1))
    assert levels.max() <= (1 << bits) - 1
    error = np.abs(dequantize(levels, bits, value_range) - values)
    assert error.max() <= step(bits, value_range) * (1 + 1e-9)


@settings(max_examples=25)
@given(bits=BITS, value_range=RANGE, seed=st.integers(0, 2**32 - 1), fraction=st.floats(-1.0, 1.0))
def test_the_mean_of_many_roundings_is_the_value(bits: int, value_range: float, seed: int, fraction: float) -> None:
    value = fraction * value_range
    trials = 20_000
    levels = quantize(np.full(trials, value), bits, value_range, np.random.default_rng(seed))
    mean = float(dequantize(levels, bits, value_range).mean())
    # One rounding's error is at most one step and has mean zero: the mean of n is within
    # 5 standard errors (step / 2 / sqrt(n) bounds the standard deviation) of the value.
    assert abs(mean - value) <= 5 * step(bits, value_range) / 2 / np.sqrt(trials)


def test_values_outside_the_range_are_clipped_to_its_ends() -> None:
    levels = quantize(np.array([-10.0, 10.0]), 4, 1.0, np.random.default_rng(0))
    assert levels.tolist() == [0, 15]


@settings(max_examples=40)
@given(bits=BITS, silos=st.integers(1, 1000), seed=st.integers(0, 2**32 - 1))
def test_a_sum_of_levels_fits_its_word_and_decodes_to_the_sum_of_values(bits: int, silos: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    width = sum_word_bits(bits, silos)
    assert width == bits + headroom_bits(silos)
    top = (1 << bits) - 1
    # The worst case: every silo sends the top level.
    assert silos * top < 1 << width
    levels = [quantize(rng.uniform(-2.0, 2.0, 33), bits, 2.0, rng) for _ in range(min(silos, 20))]
    total = np.sum(levels, axis=0, dtype=np.uint64)
    expected = np.sum([dequantize(q, bits, 2.0) for q in levels], axis=0)
    np.testing.assert_allclose(dequantize_sum(total, bits, 2.0, len(levels)), expected, atol=1e-9)


def test_past_the_modulus_limit_the_configuration_is_refused_naming_the_field() -> None:
    assert max_silos(24) == 256
    assert sum_word_bits(24, 256) == 32
    with pytest.raises(CompressionError, match=r"spec\.compression\.bits 24 with 257 silos needs 33-bit"):
        sum_word_bits(24, 257)


@pytest.mark.parametrize("bits", [0, 1, 25])
def test_bits_outside_two_to_twenty_four_are_refused(bits: int) -> None:
    with pytest.raises(CompressionError, match="quantization bits"):
        quantize(np.zeros(3), bits, 1.0, np.random.default_rng(0))
