"""Mask expansion: many AES-CTR keystreams added to (or taken from) a vector of uint32 words.

The one loop both sides of secure aggregation run over a vector: ``SecAggClient`` adds the
silo's self mask and its signed pairwise masks, and ``SecAggServer`` removes the self masks
of counted silos and the pairwise masks of dropped ones. ``MaskStreams`` holds the open
keystreams, so a vector can be masked piece by piece in order (the silo masks each chunk
of its upload as it encodes it, never holding a second whole-model copy); ``apply_masks``
masks a whole vector at once. Both walk the words in slices small enough that a slice and
the keystream being added to it stay in the core's cache, write every keystream into one
scratch buffer (no allocation per slice or per peer), and add in place, so masking costs the
keystream plus one cache-resident add per stream (``benchmarks/bench_masking.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from fedsilo.identity import Keystream

#: Words per slice: 128 KiB of vector plus 128 KiB of keystream stay in a core's L2 cache, and
#: the per-slice Python overhead stays small beside the cipher's work (measured: 2^13 to 2^17).
SLICE_WORDS = 1 << 15

#: A mask's direction: +1 adds the keystream (mod 2^32), -1 subtracts it.
Sign = Literal[1, -1]


class MaskStreams:
    """Signed keystreams read forward: each ``apply`` masks the words that follow the last call's.

    Masking a vector in pieces of any sizes, in order, gives exactly the words masking it
    whole gives (the streams continue where they stopped); memory is one slice of scratch.
    """

    def __init__(self, masks: Sequence[tuple[bytes, Sign]], slice_words: int = SLICE_WORDS) -> None:
        if any(sign not in (1, -1) for _, sign in masks):
            raise ValueError("a mask's sign is +1 (add) or -1 (subtract)")
        if slice_words < 1:
            raise ValueError("slice_words must be positive")
        # Bound methods and ufuncs, looked up once: the loop below runs once per slice per stream.
        self._streams = [(Keystream(key).read_into, np.add if sign == 1 else np.subtract) for key, sign in masks]
        self._slice_words = slice_words
        self._scratch = np.empty(slice_words + Keystream.SLACK_BYTES // 4, dtype="<u4")
        self._scratch_bytes = self._scratch.data.cast("B")
        self._full_slice = self._scratch[:slice_words]

    def apply(self, words: npt.NDArray[np.uint32]) -> None:
        """``words += sign * PRG(key)`` mod 2^32 for every stream, in place, continuing each stream."""
        if words.dtype != np.uint32 or words.ndim != 1 or not words.flags.c_contiguous:
            raise ValueError("masks apply to a contiguous 1-D uint32 vector")
        step, scratch = self._slice_words, self._scratch_bytes
        for offset in range(0, words.size, step):
            view = words[offset : offset + step]
            count = view.size
            stream_words = self._full_slice if count == step else self._scratch[:count]
            for read_into, operation in self._streams:
                read_into(scratch, count)
                # Positional ``out``: the keyword form costs a dictionary per call, once per slice per stream.
                operation(view, stream_words, view)


def apply_masks(
    words: npt.NDArray[np.uint32], masks: Sequence[tuple[bytes, Sign]], slice_words: int = SLICE_WORDS
) -> None:
    """``words += sign * PRG(key)`` mod 2^32 for every ``(key, sign)``, in place, from word 0."""
    if words.dtype != np.uint32 or words.ndim != 1 or not words.flags.c_contiguous:
        raise ValueError("masks apply to a contiguous 1-D uint32 vector")
    MaskStreams(masks, slice_words).apply(words)
