"""Mask expansion: many AES-CTR keystreams added to (or taken from) a vector of uint32 words.

The one loop both sides of secure aggregation run over a whole vector:
``SecAggClient.mask_words`` adds the silo's self mask and its signed pairwise masks, and
``SecAggServer`` removes the self masks of counted silos and the pairwise masks of dropped
ones. It walks the vector in slices small enough that a slice and the keystream being added
to it stay in the core's cache, writes every keystream into one scratch buffer (no
allocation per slice or per peer), and adds in place, so masking costs the keystream plus
one cache-resident add per stream (``benchmarks/bench_masking.py`` measures the ratio).
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


def apply_masks(
    words: npt.NDArray[np.uint32], masks: Sequence[tuple[bytes, Sign]], slice_words: int = SLICE_WORDS
) -> None:
    """``words += sign * PRG(key)`` mod 2^32 for every ``(key, sign)``, in place, from word 0."""
    if words.dtype != np.uint32 or words.ndim != 1 or not words.flags.c_contiguous:
        raise ValueError("masks apply to a contiguous 1-D uint32 vector")
    if any(sign not in (1, -1) for _, sign in masks):
        raise ValueError("a mask's sign is +1 (add) or -1 (subtract)")
    streams = [(Keystream(key), np.add if sign == 1 else np.subtract) for key, sign in masks]
    scratch = np.empty(slice_words + Keystream.SLACK_BYTES // 4, dtype="<u4")
    scratch_bytes = scratch.data.cast("B")
    for offset in range(0, words.size, slice_words):
        view = words[offset : offset + slice_words]
        stream_words = scratch[: view.size]
        for stream, operation in streams:
            stream.read_into(scratch_bytes, view.size)
            operation(view, stream_words, out=view)
