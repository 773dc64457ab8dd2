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

from typing import Final

import numpy as np
import numpy.typing as npt

#: Numbers per sketch (16 KiB of float64 per admitted silo); models up to this size are exact.
SKETCH_WIDTH: Final = 2048
# Rows of SKETCH_WIDTH coordinates folded at once: bounds the temporaries to a few MiB.
_BLOCK_ROWS: Final = 256


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

    def sketch(
        self, vector: npt.NDArray[np.floating], origin: npt.NDArray[np.floating] | None = None
    ) -> npt.NDArray[np.float64]:
        """The CountSketch of ``vector`` (``length`` values), or of ``vector - origin``, folded block by block.

        The difference is formed in float64 one block at a time: the hub sketches the step
        ``new model - old model`` without holding it whole (763 MiB at 100M parameters).
        """
        for given in (vector, origin):
            if given is not None and given.shape != (self.length,):
                raise ValueError(f"a sketched vector has {self.length} values, not {given.shape}")
        out = np.zeros(self.width, dtype=np.float64)
        # The signs are drawn again, block by block in order, on every call: the same signs each
        # time, and no per-coordinate state kept.
        signs = np.random.default_rng(self._seed)
        block = _BLOCK_ROWS * self.width
        for start in range(0, self.length, block):
            values = vector[start : start + block]
            if origin is not None:
                values = np.subtract(values, origin[start : start + block], dtype=np.float64)
            signed = values * (signs.integers(0, 2, values.size, dtype=np.int8) * 2 - 1)
            rows = values.size // self.width
            out += signed[: rows * self.width].reshape(rows, self.width).sum(axis=0, dtype=np.float64)
            tail = signed[rows * self.width :]
            out[: tail.size] += tail
        return out

    def add(self, silo: str, update: npt.NDArray[np.floating], scale: float = 1.0) -> None:
        """Keep the sketch of ``scale * update`` for ``silo`` (the update itself can then be freed)."""
        self._sketches[silo] = self.sketch(update) * scale

    def __contains__(self, silo: object) -> bool:
        return silo in self._sketches

    def distances(
        self, step: npt.NDArray[np.floating], origin: npt.NDArray[np.floating] | None = None
    ) -> dict[str, tuple[float, float | None]]:
        """Each sketched update's (estimated) L2 distance and cosine to ``step`` or, given ``origin``, to ``step - origin``.

        See ``update_distances``.
        """
        sketched_step = self.sketch(step, origin)
        return {silo: update_distances(sketch, sketched_step) for silo, sketch in self._sketches.items()}
