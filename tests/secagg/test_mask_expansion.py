"""The mask expansion adds exactly the published AES-CTR keystreams, whatever its slice size."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fedsilo.identity import keystream_words
from fedsilo.secagg import MaskStreams, apply_masks


@pytest.mark.parametrize("slice_words", [1, 3, 4, 7, 64, 1 << 15])
def test_masks_are_the_signed_sum_of_the_keystreams_for_any_slice_size(slice_words: int) -> None:
    length = 1001
    keys = [os.urandom(32) for _ in range(4)]
    signs = (1, -1, 1, -1)
    words = np.arange(length, dtype=np.uint32)
    expected = words.copy()
    for key, sign in zip(keys, signs, strict=True):
        stream = keystream_words(key, 0, length)
        expected = expected + stream if sign == 1 else expected - stream
    apply_masks(words, list(zip(keys, signs, strict=True)), slice_words)
    np.testing.assert_array_equal(words, expected)


def test_adding_then_subtracting_a_mask_gives_the_words_back() -> None:
    key = os.urandom(32)
    words = np.random.default_rng(0).integers(0, 2**32, 5000, dtype=np.uint32)
    original = words.copy()
    apply_masks(words, [(key, 1)])
    assert not np.array_equal(words, original)
    apply_masks(words, [(key, -1)])
    np.testing.assert_array_equal(words, original)


def test_masks_refuse_what_they_cannot_mask_in_place() -> None:
    key = os.urandom(32)
    with pytest.raises(ValueError, match="contiguous 1-D uint32"):
        apply_masks(np.zeros(8, dtype=np.int64), [(key, 1)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="contiguous 1-D uint32"):
        apply_masks(np.zeros(16, dtype=np.uint32)[::2], [(key, 1)])
    with pytest.raises(ValueError, match=r"\+1 \(add\) or -1"):
        apply_masks(np.zeros(8, dtype=np.uint32), [(key, 2)])  # type: ignore[list-item]


def test_masking_piece_by_piece_in_order_equals_masking_the_whole_vector() -> None:
    keys = [(os.urandom(32), 1), (os.urandom(32), -1), (os.urandom(32), 1)]
    words = np.random.default_rng(1).integers(0, 2**32, 10_000, dtype=np.uint32)
    whole = words.copy()
    apply_masks(whole, keys, 64)  # type: ignore[arg-type]
    streams = MaskStreams(keys, 64)  # type: ignore[arg-type]
    pieces = words.copy()
    for start, end in [(0, 1), (1, 65), (65, 200), (200, 201), (201, 9_999), (9_999, 10_000)]:
        streams.apply(pieces[start:end])
    np.testing.assert_array_equal(pieces, whole)
