"""Sketches of plain-mode updates: each one's distance and cosine to the step, without keeping it.

Plain mode reports, per silo, how far its update lies from the step the model took (an anomaly
signal: a sign-flipped update has a cosine near -1, a boosted one a distance far above its
peers'). The step is known only once every update is in, and keeping every update until then
made the hub's memory grow with the number of silos. ``PlainAggregation`` instead keeps a
CountSketch of each update (``SKETCH_WIDTH`` numbers): coordinate ``j`` is added, with a
random sign, into bucket ``j mod SKETCH_WIDTH``. A sketch is linear, so the sketch of
``update - step`` is the difference of sketches, and it preserves squared norms and inner
products in expectation (Charikar, Chen and Farach-Colton, 2002): the distance and cosine of
two sketches estimate those of the vectors, within a few percent of the norms at this width.
A model of at most ``SKETCH_WIDTH`` parameters is sketched exactly (one coordinate per bucket,
signs of +-1 change no distance). Robust rules, which need every update, still keep them
(``PlainAggregation(keep_updates=True)``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt

#: Numbers per sketch (16 KiB of float64 per admitted silo); models up to this size are exact.
SKETCH_WIDTH: Final = 2048
# Rows of SKETCH_WIDTH coordinates folded at once: bounds the temporaries to a few MiB.
_BLOCK_ROWS: Final = 256
#: What is sketched: one flat vector, or a model's tensors in layout order (read end to end).
Flat: TypeAlias = npt.NDArray[np.floating] | Sequence[npt.NDArray[np.floating]]


def update_distances(update: npt.NDArray[np.float64], step: npt.NDArray[np.float64]) -> tuple[float, float | None]:
    """``update``'s L2 distance to ``step`` and the cosine between them (None when either is zero).

    An anomaly signal in plain mode: a sign-flipped update has a cosine near -1, a boosted
    one a distance far above its peers'.
    """
    distance = float(np.linalg.norm(update - step))
    norms = float(np.linalg.norm(update)) * float(np.linalg.norm(step))
    return distance, (float(update @ step) / norms if norms > 0 else None)


class UpdateSketches:
    """The sketches of one round's admitted updates, and their distances to the step."""

    def __init__(self, length: int, seed: int = 0) -> None:
        self.length = length
        self.width = min(length, SKETCH_WIDTH)
        self._seed = seed
        self._sketches: dict[str, npt.NDArray[np.float64]] = {}

    def sketch(self, vector: Flat, origin: Flat | None = None) -> npt.NDArray[np.float64]:
        """The CountSketch of ``vector`` (``length`` values), or of ``vector - origin``, folded block by block.

        ``vector`` and ``origin`` are flat arrays or a model's tensors in layout order (read as
        if laid end to end, never concatenated whole). The difference is formed in float64 one
        block at a time: the hub sketches the step ``new model - old model`` without holding
        it, or either model, flat (763 and 381 MiB at 100M parameters).
        """
        blocks = self._blocks(vector)
        if origin is not None:
            blocks = (
                np.subtract(values, start, dtype=np.float64)
                for values, start in zip(blocks, self._blocks(origin), strict=True)
            )
        out = np.zeros(self.width, dtype=np.float64)
        # The signs are drawn again, block by block in order, on every call: the same signs each
        # time, and no per-coordinate state kept.
        signs = np.random.default_rng(self._seed)
        for values in blocks:
            signed = values * (signs.integers(0, 2, values.size, dtype=np.int8) * 2 - 1)
            rows = values.size // self.width
            out += signed[: rows * self.width].reshape(rows, self.width).sum(axis=0, dtype=np.float64)
            tail = signed[rows * self.width :]
            out[: tail.size] += tail
        return out

    def _blocks(self, given: Flat) -> Iterator[npt.NDArray[np.floating]]:
        """``given`` cut into consecutive blocks of ``_BLOCK_ROWS`` rows (the last may be shorter).

        A block inside one piece is a view of it; only a block that spans pieces is copied.
        """
        pieces = [given] if isinstance(given, np.ndarray) else list(given)
        size = sum(piece.size for piece in pieces)
        if size != self.length or (isinstance(given, np.ndarray) and given.ndim != 1):
            shape = given.shape if isinstance(given, np.ndarray) else size
            raise ValueError(f"a sketched vector has {self.length} values, not {shape}")
        block = _BLOCK_ROWS * self.width
        pending: list[npt.NDArray[np.floating]] = []
        filled = 0
        for piece in pieces:
            flat = piece.reshape(-1)
            taken = 0
            while taken < flat.size:
                count = min(block - filled, flat.size - taken)
                pending.append(flat[taken : taken + count])
                taken += count
                filled += count
                if filled == block:
                    yield pending[0] if len(pending) == 1 else np.concatenate(pending)
                    pending, filled = [], 0
        if pending:
            yield pending[0] if len(pending) == 1 else np.concatenate(pending)

    def add(self, silo: str, update: npt.NDArray[np.floating], scale: float = 1.0) -> None:
        """Keep the sketch of ``scale * update`` for ``silo`` (the update itself can then be freed)."""
        self._sketches[silo] = self.sketch(update) * scale

    def __contains__(self, silo: object) -> bool:
        return silo in self._sketches

    def distances(self, step: Flat, origin: Flat | None = None) -> dict[str, tuple[float, float | None]]:
        """Each sketched update's (estimated) L2 distance and cosine to ``step`` or, given ``origin``, to ``step - origin``.

        See ``update_distances``.
        """
        sketched_step = self.sketch(step, origin)
        return {silo: update_distances(sketch, sketched_step) for silo, sketch in self._sketches.items()}
