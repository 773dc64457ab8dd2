"""``TorchClassifierClient``: the built-in ``TrainerClient`` for any torch classifier.

SGD with optional momentum and weight decay, FedProx's proximal term, and federated
evaluation on the silo's held-out split. Used for the built-in models and available to
users whose model is a plain ``nn.Module`` classifier.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedsilo.datasets import SiloData
from fedsilo.protocol import TensorLayout, Weights

from ._client import EvaluateConfig, EvaluateResult, FitConfig, FitResult, TrainerClient


class TorchClassifierClient(TrainerClient):
    """Trains ``model`` with cross-entropy on ``data``."""

    def __init__(self, model: nn.Module, data: SiloData) -> None:
        # Several trainers share two cores in a local run; more threads only contend.
        torch.set_num_threads(1)
        self.model = model
        self.data = data
        self._layout = TensorLayout.of(self.get_weights())
        self._train = TensorDataset(torch.from_numpy(data.train_x), torch.from_numpy(data.train_y))
        self._test_x = torch.from_numpy(data.test_x)
        self._test_y = torch.from_numpy(data.test_y)

    def get_weights(self) -> Weights:
        return {k: v.detach().cpu().numpy().astype(np.float32, copy=True) for k, v in self.model.state_dict().items()}

    def set_weights(self, weights: Weights) -> None:
        self._layout.check(weights)
        for name, array in weights.items():
            if not np.isfinite(array).all():
                raise ValueError(f"tensor {name!r} holds NaN or infinite values")
        self.model.load_state_dict({k: torch.from_numpy(np.array(v, np.float32)) for k, v in weights.items()})

    def fit(self, config: FitConfig) -> FitResult:
        if config.dp is not None:
            raise ValueError("record-level DP-SGD is not available in this client; use privacy.mode: silo")
        generator = torch.Generator().manual_seed(config.seed * 100_003 + config.round)
        torch.manual_seed(config.seed * 100_003 + config.round)
        loader = DataLoader(self._train, batch_size=config.batch_size, shuffle=True, generator=generator)
        optimizer = torch.optim.SGD(
            self.model.parameters(), lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
        )
        anchor = [p.detach().clone() for p in self.model.parameters()] if config.proximal_mu > 0 else []
        loss_fn = nn.CrossEntropyLoss()
        self.model.train()
        steps, total, seen = 0, 0.0, 0
        for _ in range(config.local_epochs):
            for x, y in loader:
                optimizer.zero_grad()
                loss = loss_fn(self.model(x), y)
                total += float(loss.detach()) * len(y)
                seen += len(y)
                if anchor:
                    proximal = sum(((p - a) ** 2).sum() for p, a in zip(self.model.parameters(), anchor, strict=True))
                    loss = loss + config.proximal_mu / 2 * proximal
                loss.backward()
                optimizer.step()
                steps += 1
        return FitResult(
            num_samples=len(self._train),
            train_loss=total / max(seen, 1),
            steps=steps,
            batch_size=config.batch_size,
            sample_rate=min(1.0, config.batch_size / len(self._train)),
        )

    def evaluate(self, config: EvaluateConfig) -> EvaluateResult:
        if len(self._test_y) == 0:
            return EvaluateResult(math.nan, math.nan, 0)
        self.model.eval()
        with torch.no_grad():
            logits = self.model(self._test_x)
            loss = float(nn.functional.cross_entropy(logits, self._test_y))
            accuracy = float((logits.argmax(1) == self._test_y).float().mean())
        return EvaluateResult(loss, accuracy, len(self._test_y))
