"""Centered clipping (Karimireddy, He and Jaggi, ICML 2021, "Learning from History ...").

The paper is "Learning from History for Byzantine Robust Optimization". Starting from the previous round's step ``v`` (zero in the first round), each of
``clipping_iterations`` iterations sets
``v = v + mean_i(clip_tau(x_i - v))`` with ``clip_tau(d) = d * min(1, tau / ||d||)``.
A silo can move the center by at most ``tau / n`` per iteration, however large its update.
The paper centres on the server momentum; the previous step is that momentum with
coefficient zero, which needs no extra setting.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from fedsilo.api import FederatedJobSpec

from ._robust import RobustStrategy, UpdateMatrix, Vector


def centered_clip(updates: UpdateMatrix, center: Vector, radius: float, iterations: int) -> Vector:
    """``iterations`` steps of ``v = v + mean_i(clip_radius(x_i - v))`` from ``center``."""
    v = center.astype(np.float64)
    for _ in range(iterations):
        deltas = updates - v
        norms = np.linalg.norm(deltas, axis=1)
        # Updates within the radius keep their full distance (and a zero distance needs no division).
        far = norms > radius
        scale = np.ones_like(norms)
        scale[far] = radius / norms[far]
        v = v + (deltas * scale[:, None]).mean(axis=0)
    return v


class CenteredClipping(RobustStrategy):
    """Clips every update to ``tau`` around a center that starts at the previous round's step."""

    def __init__(self, spec: FederatedJobSpec) -> None:
        super().__init__(spec)
        self._previous: Vector | None = None

    def state(self) -> dict[str, npt.NDArray[np.floating]]:
        """The last round's step, the next round's starting center (nothing before round 1)."""
        return {} if self._previous is None else {"previous": self._previous}

    def restore(self, state: Mapping[str, npt.NDArray[np.floating]]) -> None:
        """The starting center from a checkpoint; ``ValueError`` for anything but ``previous``."""
        extra = sorted(set(state) - {"previous"})
        if extra:
            raise ValueError(f"centered clipping state holds {extra}; expected only 'previous'")
        previous = state.get("previous")
        self._previous = None if previous is None else np.asarray(previous, dtype=np.float64)

    def combine(self, updates: UpdateMatrix) -> Vector:
        """The centered-clipping aggregate; remembered as the next round's starting center."""
        center = self._previous if self._previous is not None else np.zeros(updates.shape[1])
        strategy = self.spec.strategy
        self._previous = centered_clip(updates, center, strategy.clipping_radius, strategy.clipping_iterations)
        return self._previous
