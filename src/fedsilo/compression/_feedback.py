"""Error feedback: what compression dropped from a silo's update, added to its next one.

Kept by the sidecar in memory and never sent. With it, the sum of what a silo sent over
rounds differs from the sum of what it meant to send by one round's residual only (at
most one quantization step per coordinate, or the coordinates top-k or the subset left
for later), instead of an error that grows with the rounds. A residual is committed only
when the hub accepted the update it belongs to: a refused update leaves it as it was.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class ErrorFeedback:
    """One silo's residual across the rounds of a job."""

    def __init__(self) -> None:
        self._residual: npt.NDArray[np.float64] | None = None

    @property
    def residual(self) -> npt.NDArray[np.float64] | None:
        """The residual to add to the next update (None before the first accepted one)."""
        return self._residual

    def commit(self, residual: npt.NDArray[np.float64]) -> None:
        """The hub accepted the update: keep what it left out for the next round."""
        if not np.isfinite(residual).all():
            raise ValueError("an error-feedback residual must be finite")
        self._residual = residual
