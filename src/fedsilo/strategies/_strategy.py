"""The server strategy interface: configure each round, turn the mean update into a model.

As in Flower, every strategy is a class behind one ABC, one per file. The strategy never
sees a single silo's update: secure aggregation hands it only the sample-weighted mean
of the accepted updates. Privacy and secure aggregation wrap strategies; they do not
subclass them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from fedsilo.api import FederatedJobSpec
from fedsilo.protocol import Weights
from fedsilo.trainer import FitConfig


class Strategy(ABC):
    """A server strategy for one job."""

    def __init__(self, spec: FederatedJobSpec) -> None:
        self.spec = spec

    def configure_round(self, round_number: int) -> FitConfig:
        """The training every silo runs in ``round_number``."""
        training = self.spec.training
        return FitConfig(
            round=round_number,
            local_epochs=training.local_epochs,
            batch_size=training.batch_size,
            learning_rate=training.learning_rate,
            momentum=training.momentum,
            weight_decay=training.weight_decay,
            seed=self.spec.seed,
        )

    @abstractmethod
    def aggregate(self, global_weights: Weights, mean_update: Weights) -> Weights:
        """The next global model from the current one and the mean of ``local - global``."""
