"""``TorchClassifierClient``: the built-in ``TrainerClient`` for any torch classifier.

SGD with optional momentum and weight decay, FedProx's proximal term, record-level DP-SGD
through Opacus when the round asks for it (``FitConfig.dp``), and federated evaluation on the silo's held-out split. ``build_client`` uses it for the built-in
models; users whose model is a plain ``nn.Module`` classifier can return one from their
factory too.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedsilo.datasets import SiloData
from fedsilo.privacy.dpsgd import make_dp_sgd
from fedsilo.protocol import Weights
from fedsilo.strategies import DpSgdConfig, FitConfig

from ._client import EvaluateConfig, EvaluateResult, FitResult, TrainerClient

# Records scored per forward pass in evaluate: bounds memory on large held-out splits.
_EVAL_BATCH = 4096


def _round_seed(config: FitConfig, silo_index: int | None) -> int:
    """The seed of one silo's round: a different shuffle per silo and per round, all reproducible."""
    silo = 0 if silo_index is None else silo_index + 1
    return int(np.random.SeedSequence([config.seed, config.round, silo]).generate_state(1)[0])


@dataclass
class _Totals:
    """Running sums over a round's batches."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    steps: int = 0

    def __iadd__(self, other: _Totals) -> _Totals:
        self.loss_sum += other.loss_sum
        self.correct += other.correct
        self.seen += other.seen
        self.steps += other.steps
        return self


def import_optimizers() -> None:
    """Build a throwaway optimizer, so torch.optim's first-use import is paid now.

    torch.optim imports torch._dynamo (and triton, where installed) when it builds its first
    optimizer: seconds of CPU, more on a busy machine. A trainer process calls this at start-up,
    outside every round's deadline; the hub, which only reads round 0's weights from a client,
    and in-process simulations never pay it.
    """
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


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
        # Batch normalization cannot train on a batch of one record (its variance is undefined):
        # such a model skips the one-record batch an epoch may end with.
        self._smallest_batch = 2 if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()) else 1
        # FedProx's w_global: the weights of the last set_weights (the initial ones before).
        self._global = self._parameters_copy()

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
        """Train for ``config.local_epochs`` epochs: mini-batch SGD, or DP-SGD when ``config.dp`` is set."""
        records = len(self._train_y)
        if records == 0:
            raise ValueError("this silo has no training records")
        optimizer = torch.optim.SGD(
            self.model.parameters(), lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.model.train()
        if config.dp is None:
            seed = _round_seed(config, self.data.silo_index)
            torch.manual_seed(seed)
            totals = self._sgd_epochs(config, optimizer, torch.Generator().manual_seed(seed))
            sample_rate = min(1.0, config.batch_size / records)
        else:
            totals, sample_rate = self._dp_sgd_epochs(config, config.dp, optimizer)
        # Non-finite weights would only be refused later by the hub; say here what went wrong.
        if not math.isfinite(totals.loss_sum) or not all(
            bool(torch.isfinite(p).all()) for p in self.model.parameters()
        ):
            raise ValueError(
                f"local training diverged in round {config.round} (non-finite loss); lower spec.training.learningRate"
            )
        seen = max(totals.seen, 1)
        dp = config.dp
        return FitResult(
            num_samples=records,
            train_loss=totals.loss_sum / seen,
            steps=totals.steps,
            batch_size=config.batch_size,
            metrics={"train_accuracy": totals.correct / seen},
            noise_multiplier=dp.noise_multiplier if dp else None,
            max_grad_norm=dp.max_grad_norm if dp else None,
            sample_rate=sample_rate,
        )

    def _step(
        self, optimizer: torch.optim.Optimizer, model: nn.Module, x: torch.Tensor, y: torch.Tensor, mu: float
    ) -> _Totals:
        """One optimizer step on one batch; the batch's loss sum, hits and size."""
        optimizer.zero_grad()
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        totals = _Totals(float(loss.detach()) * len(y), int((logits.detach().argmax(1) == y).sum()), len(y), 1)
        if mu > 0:
            distance = torch.stack(
                [((p - g) ** 2).sum() for p, g in zip(self.model.parameters(), self._global, strict=True)]
            ).sum()
            loss = loss + mu / 2 * distance
        # torch.autograd.backward is typed; Tensor.backward is not.
        torch.autograd.backward(loss)
        optimizer.step()
        return totals

    def _sgd_epochs(self, config: FitConfig, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> _Totals:
        records = len(self._train_y)
        totals = _Totals()
        for _ in range(config.local_epochs):
            order = torch.randperm(records, generator=generator)
            for start in range(0, records, config.batch_size):
                batch = order[start : start + config.batch_size]
                if len(batch) < self._smallest_batch:
                    continue
                totals += self._step(
                    optimizer, self.model, self._train_x[batch], self._train_y[batch], config.proximal_mu
                )
        return totals

    def _dp_sgd_epochs(
        self, config: FitConfig, dp: DpSgdConfig, optimizer: torch.optim.Optimizer
    ) -> tuple[_Totals, float]:
        """Opacus DP-SGD with Poisson sampling; the totals and the sample rate it ran with.

        The noise and the batches come from torch's global generator, seeded from the OS
        here: a seed derived from the job's (which the hub knows) would let the hub
        regenerate the noise and subtract it.
        """
        if config.proximal_mu > 0:
            raise ValueError(
                "FedProx's proximal term does not combine with DP-SGD (per-record clipping would skip it); "
                "use strategy fedavg or fedadam with privacy.mode record"
            )
        torch.manual_seed(secrets.randbits(63))
        loader = DataLoader(TensorDataset(self._train_x, self._train_y), batch_size=config.batch_size)
        totals = _Totals()
        with make_dp_sgd(self.model, optimizer, loader, dp.noise_multiplier, dp.max_grad_norm) as private:
            for _ in range(config.local_epochs):
                for x, y in private.data_loader:
                    totals += self._step(private.optimizer, private.module, x, y, 0.0)
            return totals, private.sample_rate

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
