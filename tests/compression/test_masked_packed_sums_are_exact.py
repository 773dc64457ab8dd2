"""Masked sums of packed words: exactly the plain sum of the quantized values, up to the modulus' limit,
and on a shared subset the masks cancel and dropped silos' masks are recovered."""

from __future__ import annotations

import numpy as np
import pytest

from fedsilo.compression import (
    coordinates,
    dequantize,
    low_bits,
    masked_levels,
    masked_total,
    max_silos,
    pack_words,
    subset_schedule,
    subset_size,
    sum_word_bits,
    unpack_words,
    words_sent,
)
from fedsilo.protocol import RoundCompression
from tests.secagg.conftest import make_round


def _cancelling_masks(silos: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Masks in Z_2^32 that sum to zero: what pairwise masks are once every silo is counted."""
    masks = [rng.integers(0, 2**32, count, dtype=np.uint64).astype(np.uint32) for _ in range(silos - 1)]
    last = np.zeros(count, dtype=np.uint32)
    for mask in masks:
        last -= mask
    return [*masks, last]


@pytest.mark.parametrize("bits", [4, 8, 16, 24])
def test_at_the_limit_the_sum_of_packed_masked_words_is_the_sum_of_levels(bits: int) -> None:
    silos = max_silos(bits) if bits >= 16 else 1000
    width = sum_word_bits(bits, silos)
    assert width <= 32
    rng = np.random.default_rng(bits)
    count = 97
    top = np.full(count, (1 << bits) - 1, dtype=np.uint32)
    # Every silo at the top level (the worst case the width must hold), and one at random levels.
    levels = [rng.integers(0, 1 << bits, count, dtype=np.uint64).astype(np.uint32), *([top] * (silos - 1))]
    low = low_bits(width)
    total = np.zeros(count, dtype=np.uint32)
    for words, mask in zip(levels, _cancelling_masks(silos, count, rng), strict=True):
        wire = pack_words((words + mask) & low, width)
        total += unpack_words(wire, width, count)
    plain = np.sum(np.asarray(levels, dtype=np.uint64), axis=0)
    np.testing.assert_array_equal((total & low).astype(np.uint64), plain)


def _settings(length: int, silos: int, fraction: float | None, round_number: int = 1) -> RoundCompression:
    size = subset_size(length, fraction) if fraction is not None else 0
    seed, offset = subset_schedule(7, round_number, length, size) if size else (0, 0)
    return RoundCompression(
        bits=8,
        word_bits=sum_word_bits(8, silos),
        value_range=4.0,
        weight_scale=500,
        subset_seed=seed,
        subset_offset=offset,
        subset_size=size,
    )


@pytest.mark.parametrize("fraction", [None, 0.1])
@pytest.mark.parametrize("dropped", [(), ("b",), ("b", "e")])
def test_a_shared_subset_round_unmasks_to_the_sum_whatever_drops_out(
    fraction: float | None, dropped: tuple[str, ...]
) -> None:
    names = ("a", "b", "c", "d", "e")
    length = 1000
    settings = _settings(length, len(names), fraction)
    round_ = make_round(names, threshold=3, length=words_sent(settings, length))
    rng = np.random.default_rng(len(dropped))
    levels, weights = {}, {}
    for silo in names:
        weights[silo] = int(rng.integers(1, 501))
        update = rng.normal(0, 0.5, length)
        levels[silo] = masked_levels(update, None, weights[silo], settings, rng).data
    round_.advertise(list(names))
    round_.share(list(names))
    counted = [s for s in names if s not in dropped]
    for silo in counted:
        masked = round_.clients[silo].mask_words(levels[silo].copy())
        wire = pack_words(masked & low_bits(settings.word_bits), settings.word_bits)
        round_.server.add_input(silo, unpack_words(wire, settings.word_bits, masked.size))
    for silo in dropped:
        round_.server.exclude(silo, "dropped")
    round_.unmask(counted)
    raw = round_.server.raw_result() & low_bits(settings.word_bits)
    np.testing.assert_array_equal(raw, np.sum([levels[s] for s in counted], axis=0, dtype=np.uint32))
    total = masked_total(round_.server.raw_result(), len(counted), settings, length)
    chosen = coordinates(settings, length)
    sent = np.arange(length) if chosen is None else chosen
    expected = sum(dequantize(levels[s], 8, 4.0) for s in counted) * settings.weight_scale
    np.testing.assert_allclose(total[sent], expected, atol=1e-6)
    assert not np.delete(total, sent).any()


def test_the_subset_rotates_through_every_coordinate() -> None:
    length, size = 1003, subset_size(1003, 0.1)
    seen = np.zeros(length, dtype=int)
    windows = -(-length // size)
    for round_number in range(1, windows + 1):
        seed, offset = subset_schedule(7, round_number, length, size)
        settings = RoundCompression(
            bits=8,
            word_bits=11,
            value_range=1.0,
            weight_scale=1,
            subset_seed=seed,
            subset_offset=offset,
            subset_size=size,
        )
        chosen = coordinates(settings, length)
        assert chosen is not None and chosen.size == size
        seen[chosen] += 1
    assert seen.min() >= 1
    # One cycle is one permutation: only the wrapped last window repeats coordinates.
    assert seen.sum() == windows * size
    assert subset_schedule(7, windows + 1, length, size)[0] != subset_schedule(7, 1, length, size)[0]
