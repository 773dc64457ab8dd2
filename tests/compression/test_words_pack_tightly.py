"""Packing: b-bit words take b bits on the wire, and come back exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsilo.compression import CompressionError, pack_words, packed_size, unpack_words


@settings(max_examples=80, deadline=None)
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
