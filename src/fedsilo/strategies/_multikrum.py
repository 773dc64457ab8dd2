"""Multi-Krum (Blanchard et al., NeurIPS 2017, "Machine Learning with Adversaries").

With ``n`` updates of which at most ``f`` are Byzantine, each update's score is the sum of
its squared L2 distances to its ``n - f - 2`` nearest other updates; the step is the plain
mean of the ``m`` updates with the lowest scores (``m = 1`` is Krum). An attacker far from
the honest updates scores badly and is left out. Ties are broken by silo order, so the
choice is deterministic.
"""

from __future__ import annotations

import numpy as np

from ._robust import RobustStrategy, UpdateMatrix, Vector


def krum_scores(updates: UpdateMatrix, byzantine: int) -> Vector:
    """Every update's Krum score: the sum of squared distances to its ``n - f - 2`` nearest others.

    Raises:
        ValueError: ``n < 2f + 3``, where Krum's guarantee does not hold.
    """
    n = updates.shape[0]
    if n < 2 * byzantine + 3:
        raise ValueError(
            f"multikrum with byzantineSilos {byzantine} needs at least {2 * byzantine + 3} updates, got {n}"
        )
    squares = (updates * updates).sum(axis=1)
    distances = np.maximum(squares[:, None] + squares[None, :] - 2.0 * updates @ updates.T, 0.0)
    neighbours = n - byzantine - 2
    # Each row without its own zero distance, nearest first.
    others = np.sort(distances + np.diag(np.full(n, np.inf)), axis=1)[:, :neighbours]
    scores: Vector = others.sum(axis=1)
    return scores


class MultiKrum(RobustStrategy):
    """The mean of the ``m`` updates with the lowest Krum scores."""

    def combine(self, updates: UpdateMatrix) -> Vector:
        """Score every update, average the ``m`` best (``m`` defaults to ``n - f``)."""
        strategy = self.spec.strategy
        n = updates.shape[0]
        scores = krum_scores(updates, strategy.byzantine_silos)
        selected = min(strategy.krum_selected or n - strategy.byzantine_silos, n - strategy.byzantine_silos)
        chosen = np.argsort(scores, kind="stable")[:selected]
        mean: Vector = updates[chosen].mean(axis=0)
        return mean
