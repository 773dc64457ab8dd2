"""Packing: b-bit words take b bits on the wire and come back exactly; a hostile plain payload is refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsilo.compression import CompressionError, pack_words, packed_size, read_plain_payload, unpack_words
from fedsilo.protocol import RoundCompression


@settings(max_examples=80)
@given(width=st.integers(1, 32), count=st.integers(0, 3000), seed=st.integers(0, 2**32 - 1))
def test_packed_words_come_back_exactly(width: int, count: int, seed: int) -> None:
    words = np.random.default_rng(seed).integers(0, 1 << width, count, dtype=np.uint64).astype(np.uint32)
    packed = pack_words(words, width)
    assert packed.size == packed_size(count, width) == (count * width + 7) // 8
    np.testing.assert_array_equal(unpack_words(packed, width, count), words)


def test_slices_longer_than_one_packing_slice_join_up() -> None:
    words = np.arange(200_003, dtype=np.uint32) % 4096
    np.testing.assert_array_equal(unpack_words(pack_words(words, 12), 12, words.size), words)


def test_a_payload_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(CompressionError, match="expected 15"):
        unpack_words(np.zeros(14, dtype=np.uint8), 12, 10)


@settings(max_examples=200)
@given(data=st.binary(max_size=300), top_k=st.sampled_from([0, 3]), bits=st.sampled_from([0, 4, 8]))
def test_a_hostile_plain_payload_decodes_to_finite_values_or_is_refused(data: bytes, top_k: int, bits: int) -> None:
    settings_ = RoundCompression(bits=bits, word_bits=bits, value_range=2.0, weight_scale=1, top_k=top_k)
    try:
        update, _ = read_plain_payload(np.frombuffer(data, dtype=np.uint8), settings_, 40)
    except CompressionError:
        return
    assert update.shape == (40,) and np.isfinite(update).all()


def test_top_k_indices_out_of_order_are_refused() -> None:
    settings_ = RoundCompression(bits=0, word_bits=0, value_range=2.0, weight_scale=1, top_k=2)
    payload = np.frombuffer(
        np.array([5.0], "<f4").tobytes() + np.array([7, 3], "<u4").tobytes() + np.ones(2, "<f4").tobytes(), np.uint8
    )
    with pytest.raises(CompressionError, match="strictly increasing"):
        read_plain_payload(payload, settings_, 10)
