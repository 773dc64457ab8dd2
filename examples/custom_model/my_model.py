"""A user model for fedsilo: your own network and training loop behind ``TrainerClient``.

``job.yaml`` names it as ``model.factory: my_model:make_client``; ``fedsilo run`` puts this
folder on the trainer's import path. In a cluster, build a trainer image FROM the
fedsilo trainer image with this module installed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import SiloData
from fedsilo.protocol import Weights
from fedsilo.trainer import EvaluateConfig, EvaluateResult, FitConfig, FitResult, TrainerClient


class WideAndDeep(nn.Module):
    """A linear path plus a small hidden path, summed."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.wide = nn.Linear(features, classes)
        self.deep = nn.Sequential(nn.Linear(features, 32), nn.Tanh(), nn.Linear(32, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return self.wide(x) + self.deep(x)


class WideAndDeepClient(TrainerClient):
    """Full-batch Adam: a training loop that is entirely the user's own."""

    def __init__(self, data: SiloData) -> None:
        torch.set_num_threads(1)
        self.model = WideAndDeep(data.num_features, data.num_classes)
        self.x, self.y = torch.from_numpy(data.train_x), torch.from_numpy(data.train_y)
        self.test_x, self.test_y = torch.from_numpy(data.test_x), torch.from_numpy(data.test_y)

    def get_weights(self) -> Weights:
        return {k: v.detach().numpy().copy() for k, v in self.model.state_dict().items()}

    def set_weights(self, weights: Weights) -> None:
        self.model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})

    def fit(self, config: FitConfig) -> FitResult:
        optimizer = torch.optim.Adam(self.model.parameters(), lr=0.01)
        loss = torch.tensor(0.0)
        for _ in range(config.local_epochs * 5):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(self.model(self.x), self.y)
            loss.backward()
            optimizer.step()
        return FitResult(num_samples=len(self.y), train_loss=float(loss), steps=config.local_epochs * 5, batch_size=len(self.y))

    def evaluate(self, config: EvaluateConfig) -> EvaluateResult:
        with torch.no_grad():
            logits = self.model(self.test_x)
            loss = float(nn.functional.cross_entropy(logits, self.test_y))
            accuracy = float((logits.argmax(1) == self.test_y).float().mean())
        return EvaluateResult(loss, accuracy, len(self.test_y))


def make_client(spec: FederatedJobSpec, data: SiloData) -> TrainerClient:
    """The factory ``job.yaml`` names."""
    return WideAndDeepClient(data)
