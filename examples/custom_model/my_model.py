"""A user model for fedsilo: your own network and training loop behind ``TrainerClient``.

``job.yaml`` names it as ``model.factory: my_model:make_client``; every trainer imports
this module and calls ``make_client(spec, data)`` with its own silo's records, and the
hub calls it once for the initial model. ``fedsilo run`` puts this folder on the
trainer's import path; in a cluster, build a trainer image FROM the fedsilo trainer
image with this module installed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import SiloData
from fedsilo.protocol import Weights
from fedsilo.trainer import EvaluateConfig, EvaluateResult, FitConfig, FitResult, TrainerClient

# Full-batch Adam steps per local epoch: this model's own training schedule.
STEPS_PER_EPOCH = 5
ADAM_LEARNING_RATE = 0.01


class WideAndDeep(nn.Module):
    """A linear path plus a small hidden path, summed."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.wide = nn.Linear(features, classes)
        self.deep = nn.Sequential(nn.Linear(features, 32), nn.Tanh(), nn.Linear(32, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of each record."""
        x = x.flatten(1)
        out: torch.Tensor = self.wide(x) + self.deep(x)
        return out


class WideAndDeepClient:
    """Full-batch Adam on the silo's records: a training loop that is entirely the user's own.

    Full-batch steps draw nothing at random, so this loop needs no seed; a loop that
    shuffles should seed from ``config.seed``, ``config.round`` and ``data.silo_index``.

    It subclasses nothing: fedsilo accepts any object with the four ``TrainerClient``
    methods. (Subclassing ``TrainerClient`` works too and lets mypy check the signatures.)
    """

    def __init__(self, data: SiloData) -> None:
        # Several trainers share the machine's cores in a local run.
        torch.set_num_threads(1)
        self.model = WideAndDeep(data.num_features, data.num_classes)
        self.x, self.y = torch.from_numpy(data.train_x), torch.from_numpy(data.train_y)
        self.test_x, self.test_y = torch.from_numpy(data.test_x), torch.from_numpy(data.test_y)

    def get_weights(self) -> Weights:
        """The model's tensors as float32 numpy copies."""
        return {k: v.detach().numpy().astype(np.float32, copy=True) for k, v in self.model.state_dict().items()}

    def set_weights(self, weights: Weights) -> None:
        """Load the global model, refusing tensors that do not fit with a ``ValueError`` naming them."""
        for name, current in self.model.state_dict().items():
            if name not in weights:
                raise ValueError(f"tensor {name!r} is missing")
            if weights[name].shape != tuple(current.shape) or not np.isfinite(weights[name]).all():
                raise ValueError(f"tensor {name!r} has shape {weights[name].shape} or non-finite values")
        self.model.load_state_dict({k: torch.from_numpy(np.array(v, np.float32)) for k, v in weights.items()})

    def fit(self, config: FitConfig) -> FitResult:
        """Train from the global model for ``config.local_epochs`` epochs of this model's schedule."""
        if config.dp is not None:
            raise ValueError("WideAndDeepClient does not implement DP-SGD")
        optimizer = torch.optim.Adam(self.model.parameters(), lr=ADAM_LEARNING_RATE)
        steps = config.local_epochs * STEPS_PER_EPOCH
        loss = torch.tensor(0.0)
        for _ in range(steps):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(self.model(self.x), self.y)
            torch.autograd.backward(loss)
            optimizer.step()
        return FitResult(num_samples=len(self.y), train_loss=float(loss.detach()), steps=steps, batch_size=len(self.y))

    def evaluate(self, config: EvaluateConfig) -> EvaluateResult:
        """Loss and accuracy on the silo's held-out records."""
        with torch.no_grad():
            logits = self.model(self.test_x)
            loss = float(nn.functional.cross_entropy(logits, self.test_y))
            accuracy = float((logits.argmax(1) == self.test_y).float().mean())
        return EvaluateResult(loss, accuracy, len(self.test_y))


def make_client(spec: FederatedJobSpec, data: SiloData) -> TrainerClient:
    """The factory ``job.yaml`` names: called with the job spec and this silo's records."""
    return WideAndDeepClient(data)
