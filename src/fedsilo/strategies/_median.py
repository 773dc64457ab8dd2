"""Coordinate-wise median (Yin et al., ICML 2018, "Byzantine-Robust Distributed Learning").

Every coordinate of the step is the median of that coordinate over the round's updates
(the mean of the two middle values for an even count). Fewer than half the silos cannot
move a coordinate outside the range of the honest values.
"""

from __future__ import annotations

import numpy as np

from ._robust import RobustStrategy, UpdateMatrix, Vector


class Median(RobustStrategy):
    """The coordinate-wise median of the updates."""

    def combine(self, updates: UpdateMatrix) -> Vector:
        """The median of every column of ``updates``."""
        return np.median(updates, axis=0)
