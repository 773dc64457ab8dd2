"""Coordinate-wise trimmed mean (Yin et al., ICML 2018, "Byzantine-Robust Distributed Learning").

For ``n`` updates and ``k = floor(trim_fraction * n)``, every coordinate of the step is
the mean of that coordinate's values without its ``k`` largest and ``k`` smallest. Up to
``k`` attacking silos can move a coordinate only within the range of the honest values.
"""

from __future__ import annotations

import math

import numpy as np

from ._robust import RobustStrategy, UpdateMatrix, Vector


def trimmed_count(updates: int, fraction: float) -> int:
    """How many values are dropped at each end: ``floor(fraction * updates)``, always leaving one."""
    return min(math.floor(fraction * updates), (updates - 1) // 2)


class TrimmedMean(RobustStrategy):
    """The mean of every coordinate without its ``k`` extreme values at each end."""

    def combine(self, updates: UpdateMatrix) -> Vector:
        """Sort every column, drop ``k`` values at each end, average the rest."""
        n = updates.shape[0]
        k = trimmed_count(n, self.spec.strategy.trim_fraction)
        ordered = np.sort(updates, axis=0)
        mean: Vector = ordered[k : n - k].mean(axis=0)
        return mean
