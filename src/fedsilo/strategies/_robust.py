"""The interface of Byzantine-robust strategies: they combine the individual updates, not their mean.

FedAvg's mean moves as far as one silo pushes it; a robust rule bounds what a few
attacking silos can do by looking at every update. The hub has them only when the job's
aggregation is plain (masked aggregation hands it the sum alone), so the API refuses a
robust strategy with masked aggregation and the coordinator calls ``aggregate_updates``
with the admitted updates. The rules ignore the silos' sample counts on purpose: a
count is the silo's own claim, and weighting by it would give an attacker the lever the
rule takes away.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fedsilo.protocol import TensorLayout, Weights

from ._strategy import Strategy, check_update

#: Updates as rows of one matrix: ``updates[i]`` is silo i's flattened ``local - global``.
UpdateMatrix = npt.NDArray[np.float64]
Vector = npt.NDArray[np.float64]


class RobustStrategy(Strategy):
    """A strategy whose step is a robust combination of the round's updates."""

    def aggregate(self, global_weights: Weights, mean_update: Weights) -> Weights:
        """Refuse: the mean is what a robust rule must not trust; only ``aggregate_updates`` applies.

        Raises:
            TypeError: always; the job's validation keeps robust strategies out of masked jobs.
        """
        raise TypeError(
            f"strategy {self.spec.strategy.name.value} needs each silo's update (aggregation.mode plain), "
            "not their mean"
        )

    def aggregate_updates(self, global_weights: Weights, updates: Sequence[Weights]) -> Weights:
        """The next global model: ``global + server_learning_rate * combine(updates)``.

        Raises:
            ValueError: there is no update, or one lacks a tensor, reshapes one, or holds NaN.
        """
        if not updates:
            raise ValueError(f"strategy {self.spec.strategy.name.value} got no update to combine")
        for update in updates:
            check_update(global_weights, update)
        layout = TensorLayout.of(global_weights)
        matrix = np.stack([layout.flatten(update).astype(np.float64) for update in updates])
        step = self.combine(matrix) * self.spec.strategy.server_learning_rate
        moved = layout.flatten(global_weights).astype(np.float64) + step
        return layout.unflatten(moved.astype(np.float32))

    @abstractmethod
    def combine(self, updates: UpdateMatrix) -> Vector:
        """The robust aggregate of ``updates`` (one row per silo): the step the global model takes."""
