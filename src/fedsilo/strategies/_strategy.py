"""The server strategy interface: configure each round, turn the mean update into a model.

As in Flower, every strategy is a class behind one ABC, one per file. ``aggregate`` sees
no single silo's update: secure aggregation hands it only the sample-weighted mean of
the accepted updates (robust rules, ``_robust.py``, take the updates in plain mode). Privacy and secure aggregation wrap strategies; they do not
subclass them. The local runner and the hub's coordinator call these methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from fedsilo.api import FederatedJobSpec
from fedsilo.protocol import Weights

from ._config import FitConfig


class Strategy(ABC):
    """A server strategy for one job; it may keep state across rounds (FedAdam's moments)."""

    def __init__(self, spec: FederatedJobSpec) -> None:
        self.spec = spec

    def configure_round(self, round_number: int) -> FitConfig:
        """The training every silo runs in ``round_number``."""
        return FitConfig.from_training(self.spec.training, round_number, self.spec.seed)

    def state(self) -> dict[str, npt.NDArray[np.floating]]:
        """What the strategy carries from round to round, as named tensors; a checkpoint stores it.

        A resumed job must step exactly as an uninterrupted one, so whatever ``aggregate``
        remembers (FedAdam's moments, centered clipping's last step) is here. Stateless
        strategies keep nothing.
        """
        return {}

    def restore(self, state: Mapping[str, npt.NDArray[np.floating]]) -> None:
        """Take back what ``state`` returned (from a checkpoint); ``ValueError`` naming what does not fit."""
        if state:
            raise ValueError(f"strategy {type(self).__name__} keeps no state, but the checkpoint holds {sorted(state)}")

    @abstractmethod
    def aggregate(self, global_weights: Weights, mean_update: Weights) -> Weights:
        """The next global model from the current one and the mean of ``local - global``.

        Raises:
            ValueError: ``mean_update`` lacks a tensor of the model or has another shape.
        """


def check_update(global_weights: Weights, mean_update: Weights) -> None:
    """Raise ``ValueError`` naming the first tensor the update lacks, adds, or reshapes."""
    extra = sorted(set(mean_update) - set(global_weights))
    if extra:
        raise ValueError(f"the mean update has tensors the model lacks: {extra}")
    for name, value in global_weights.items():
        if name not in mean_update:
            raise ValueError(f"the mean update lacks tensor {name!r}")
        if mean_update[name].shape != value.shape:
            raise ValueError(
                f"tensor {name!r} of the mean update has shape {mean_update[name].shape}, expected {value.shape}"
            )
        if not np.isfinite(mean_update[name]).all():
            raise ValueError(f"tensor {name!r} of the mean update holds NaN or infinite values")
