"""Words of any width from 1 to 32 bits packed end to end into bytes, little-endian bit order.

This is what makes the bytes on the wire shrink: a 12-bit masked word costs 12 bits, not a
32-bit slot. Packing works in slices of whole bytes so memory stays a small multiple of the
packed size whatever the model's. Called by ``_codec`` (silo side) and the hub's sinks.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from ._quantize import MAX_WORD_BITS, CompressionError

# Words per slice: a multiple of 8, so every slice ends on a byte boundary at any width.
_SLICE_WORDS: Final = 1 << 16


def packed_size(count: int, word_bits: int) -> int:
    """Bytes that ``count`` words of ``word_bits`` bits take on the wire."""
    _check_width(word_bits)
    return (count * word_bits + 7) // 8


def low_bits(word_bits: int) -> np.uint32:
    """The mask that keeps a uint32 word's low ``word_bits`` bits: its value mod ``2^word_bits``."""
    _check_width(word_bits)
    return np.uint32((1 << word_bits) - 1)


def pack_words(words: npt.NDArray[np.unsignedinteger], word_bits: int) -> npt.NDArray[np.uint8]:
    """``words`` (each below ``2^word_bits``) as packed bytes."""
    _check_width(word_bits)
    words = np.ascontiguousarray(words, dtype=np.uint32)
    if word_bits == 32:
        return words.astype("<u4").view(np.uint8).copy()
    if word_bits == 16:
        return words.astype("<u2").view(np.uint8).copy()
    if word_bits == 8:
        return words.astype(np.uint8)
    shifts = np.arange(word_bits, dtype=np.uint32)
    out = np.empty(packed_size(words.size, word_bits), dtype=np.uint8)
    for start in range(0, words.size, _SLICE_WORDS):
        piece = words[start : start + _SLICE_WORDS]
        bits = ((piece[:, None] >> shifts) & 1).astype(np.uint8)
        packed = np.packbits(bits.reshape(-1), bitorder="little")
        first = start * word_bits // 8
        out[first : first + packed.size] = packed
    return out


def unpack_words(data: npt.NDArray[np.uint8], word_bits: int, count: int) -> npt.NDArray[np.uint32]:
    """``count`` words of ``word_bits`` bits from packed bytes; ``CompressionError`` on a wrong size."""
    expected = packed_size(count, word_bits)
    if data.size != expected:
        raise CompressionError(f"{data.size} packed bytes, expected {expected} for {count} words of {word_bits} bits")
    data = np.ascontiguousarray(data, dtype=np.uint8)
    if word_bits == 32:
        return data.view("<u4").astype(np.uint32)
    if word_bits == 16:
        return data.view("<u2").astype(np.uint32)
    if word_bits == 8:
        return data.astype(np.uint32)
    weights = (np.uint32(1) << np.arange(word_bits, dtype=np.uint32)).astype(np.uint32)
    out = np.empty(count, dtype=np.uint32)
    for start in range(0, count, _SLICE_WORDS):
        words = min(_SLICE_WORDS, count - start)
        first = start * word_bits // 8
        piece = data[first : first + packed_size(words, word_bits)]
        bits = np.unpackbits(piece, bitorder="little", count=words * word_bits).reshape(words, word_bits)
        out[start : start + words] = bits.astype(np.uint32) @ weights
    return out


def _check_width(word_bits: int) -> None:
    if not 1 <= word_bits <= MAX_WORD_BITS:
        raise CompressionError(f"a packed word has 1 to {MAX_WORD_BITS} bits, not {word_bits}")
