"""Which coordinates a round sends: the shared subset every silo of a round uses, and top-k.

The shared subset is what makes sparsification work under masking: every silo sends the
same coordinates, so the pairwise masks, drawn for that many words, cancel exactly on
them. The round publishes a seed and an offset; the seed draws a permutation of all the
coordinates and the offset picks the round's window of it, so ``ceil(d / k)`` rounds in a
row visit every coordinate exactly once before the next seed draws a new permutation.
Top-k (plain mode only) keeps each silo's own largest coordinates.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import numpy.typing as npt

from ._quantize import CompressionError


def subset_size(length: int, fraction: float) -> int:
    """Coordinates a round's subset holds for a model of ``length`` coordinates."""
    if not 0.0 < fraction <= 1.0:
        raise CompressionError(f"spec.compression.subset must be in (0, 1], not {fraction}")
    return max(1, min(length, math.ceil(length * fraction)))


def subset_schedule(job_seed: int, round_number: int, length: int, size: int) -> tuple[int, int]:
    """The ``(seed, offset)`` round ``round_number`` publishes: windows of one permutation per cycle."""
    windows = math.ceil(length / size)
    cycle, window = divmod(round_number - 1, windows)
    digest = hashlib.sha256(f"fedsilo.compression.subset/v1|{job_seed}|{cycle}".encode()).digest()
    return int.from_bytes(digest[:7], "big"), window * size


def subset_indices(seed: int, offset: int, size: int, length: int) -> npt.NDArray[np.uint32]:
    """The sorted coordinates of the window ``[offset, offset + size)`` of the seed's permutation.

    The last window of a cycle wraps to the permutation's start so every round sends ``size``.
    """
    if not 0 < size <= length or not 0 <= offset < length:
        raise CompressionError(f"a subset of {size} at offset {offset} does not fit {length} coordinates")
    permutation = np.random.default_rng(seed).permutation(length)
    window = permutation[offset : offset + size]
    if window.size < size:
        window = np.concatenate([window, permutation[: size - window.size]])
    return np.sort(window).astype(np.uint32)


def top_k_indices(values: npt.NDArray[np.floating], k: int) -> npt.NDArray[np.uint32]:
    """The sorted coordinates of the ``k`` values largest in magnitude."""
    if not 0 < k <= values.size:
        raise CompressionError(f"top-k keeps between 1 and {values.size} coordinates, not {k}")
    if k == values.size:
        return np.arange(values.size, dtype=np.uint32)
    chosen = np.argpartition(np.abs(values), values.size - k)[values.size - k :]
    return np.sort(chosen).astype(np.uint32)
