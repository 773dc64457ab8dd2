"""``TorchClassifierClient``: the built-in ``TrainerClient`` for any torch classifier.

SGD with optional momentum and weight decay, FedProx's proximal term, and federated
evaluation on the silo's held-out split. ``build_client`` uses it for the built-in
models; users whose model is a plain ``nn.Module`` classifier can return one from their
factory too.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from fedsilo.datasets import SiloData
from fedsilo.protocol import Weights
from fedsilo.strategies import FitConfig

from ._client import EvaluateConfig, EvaluateResult, FitResult, TrainerClient

# Records scored per forward pass in evaluate: bounds memory on large held-out splits.
_EVAL_BATCH = 4096


def _round_seed(config: FitConfig, silo_index: int | None) -> int:
    """The seed of one silo's round: a different shuffle per silo and per round, all reproducible."""
    silo = 0 if silo_index is None else silo_index + 1
    return int(np.random.SeedSequence([config.seed, config.round, silo]).generate_state(1)[0])


class TorchClassifierClient(TrainerClient):
    """Trains ``model`` (logits out) with cross-entropy on ``data``, on the CPU."""

    def __init__(self, model: nn.Module, data: SiloData) -> None:
        # Several trainers share a few cores in a local run; more threads only contend.
        torch.set_num_threads(1)
        self.model = model
        self.data = data
        self._shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
        self._train_x = torch.from_numpy(data.train_x)
        self._train_y = torch.from_numpy(data.train_y)
        self._test_x = torch.from_numpy(data.test_x)
        self._test_y = torch.from_numpy(data.test_y)
        # FedProx's w_global: the weights of the last set_weights (the initial ones before).
        self._global = self._parameters_copy()
        # torch.optim imports torch._dynamo when it builds its first optimizer, seconds on a
        # busy machine: pay that at start-up rather than inside the first round's deadline.
        torch.optim.SGD(self.model.parameters(), lr=0.1)

    def _parameters_copy(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.model.parameters()]

    def get_weights(self) -> Weights:
        """The state dict as float32 numpy copies, in the model's order."""
        return {k: v.detach().cpu().numpy().astype(np.float32, copy=True) for k, v in self.model.state_dict().items()}

    def set_weights(self, weights: Weights) -> None:
        """Load ``weights``; every tensor is checked before any is loaded."""
        unexpected = sorted(set(weights) - set(self._shapes))
        if unexpected:
            raise ValueError(f"tensor {unexpected[0]!r} is not part of the model")
        for name, shape in self._shapes.items():
            if name not in weights:
                raise ValueError(f"tensor {name!r} is missing")
            array = np.asarray(weights[name])
            if array.dtype.kind not in "fiu":
                raise ValueError(f"tensor {name!r} has dtype {array.dtype}, expected float32")
            if array.shape != shape:
                raise ValueError(f"tensor {name!r} has shape {array.shape}, expected {shape}")
            if not np.isfinite(array).all():
                raise ValueError(f"tensor {name!r} holds NaN or infinite values")
        self.model.load_state_dict({k: torch.from_numpy(np.array(weights[k], np.float32)) for k in self._shapes})
        self._global = self._parameters_copy()

    def fit(self, config: FitConfig) -> FitResult:
        """Mini-batch SGD for ``config.local_epochs`` epochs over the training split."""
        if config.dp is not None:
            raise ValueError(
                "the round asks for record-level DP-SGD (FitConfig.dp), which TorchClassifierClient does not run; "
                "use a DP-SGD capable client or privacy.mode: silo"
            )
        records = len(self._train_y)
        if records == 0:
            raise ValueError("this silo has no training records")
        seed = _round_seed(config, self.data.silo_index)
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.SGD(
            self.model.parameters(), lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.model.train()
        steps, loss_sum, correct = 0, 0.0, 0
        for _ in range(config.local_epochs):
            order = torch.randperm(records, generator=generator)
            for start in range(0, records, config.batch_size):
                batch = order[start : start + config.batch_size]
                x, y = self._train_x[batch], self._train_y[batch]
                optimizer.zero_grad()
                logits = self.model(x)
                loss = nn.functional.cross_entropy(logits, y)
                loss_sum += float(loss.detach()) * len(y)
                correct += int((logits.detach().argmax(1) == y).sum())
                if config.proximal_mu > 0:
                    distance = torch.stack(
                        [((p - g) ** 2).sum() for p, g in zip(self.model.parameters(), self._global, strict=True)]
                    ).sum()
                    loss = loss + config.proximal_mu / 2 * distance
                # torch.autograd.backward is typed; Tensor.backward is not.
                torch.autograd.backward(loss)
                optimizer.step()
                steps += 1
        seen = config.local_epochs * records
        # Non-finite weights would only be refused later by the hub; say here what went wrong.
        if not math.isfinite(loss_sum) or not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            raise ValueError(
                f"local training diverged in round {config.round} (non-finite loss); lower spec.training.learningRate"
            )
        return FitResult(
            num_samples=records,
            train_loss=loss_sum / seen,
            steps=steps,
            batch_size=config.batch_size,
            metrics={"train_accuracy": correct / seen},
            sample_rate=min(1.0, config.batch_size / records),
        )

    def evaluate(self, config: EvaluateConfig) -> EvaluateResult:
        """Mean cross-entropy and accuracy on the held-out split."""
        records = len(self._test_y)
        if records == 0:
            return EvaluateResult(math.nan, math.nan, 0)
        self.model.eval()
        loss_sum, correct = 0.0, 0
        with torch.no_grad():
            for start in range(0, records, _EVAL_BATCH):
                x, y = self._test_x[start : start + _EVAL_BATCH], self._test_y[start : start + _EVAL_BATCH]
                logits = self.model(x)
                loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(1) == y).sum())
        return EvaluateResult(loss_sum / records, correct / records, records)
