"""Error feedback: what compression dropped from a silo's update, added to its next one.

Kept by the sidecar in memory and never sent. With it, the sum of what a silo sent over
rounds differs from the sum of what it meant to send by one round's residual only (at
most one quantization step per coordinate, or the coordinates top-k or the subset left
for later), instead of an error that grows with the rounds. A residual is committed only
when the hub accepted the update it belongs to: a refused update leaves it as it was.

Partial error feedback keeps only a ``fraction`` of each residual and drops the rest. It
is for top-k after local training: every round the silo trains again from the global
model, so its fresh update already re-learns much of what that model did not receive, and
a whole residual adds it a second time (on the quickstart, top-k 1% with the whole residual
sends mostly that old surplus: its residual's norm grows to about ten times a fresh
update's).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class ErrorFeedback:
    """One silo's residual across the rounds of a job."""

    def __init__(self, fraction: float = 1.0) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"an error-feedback fraction is in (0, 1], not {fraction}")
        self._fraction = fraction
        self._residual: npt.NDArray[np.float64] | None = None

    @property
    def residual(self) -> npt.NDArray[np.float64] | None:
        """The residual to add to the next update (None before the first accepted one)."""
        return self._residual

    def commit(self, residual: npt.NDArray[np.float64]) -> None:
        """The hub accepted the update: keep (the fraction of) what it left out for the next round."""
        if not np.isfinite(residual).all():
            raise ValueError("an error-feedback residual must be finite")
        self._residual = residual if self._fraction == 1.0 else residual * self._fraction
