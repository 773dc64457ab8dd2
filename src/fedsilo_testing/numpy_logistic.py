"""Multinomial logistic regression in numpy: a ``TrainerClient`` for simulations that run hundreds of jobs.

The built-in torch model costs a few milliseconds of framework overhead per SGD step, which
over a benchmark of hundreds of ten-silo jobs is tens of CPU minutes on a machine shared
by many; this client trains the same model (``softmax(x W^T + b)``, cross-entropy,
mini-batch SGD with torch's momentum rule) in microseconds a step. Used by
``robust_simulation`` when a scenario asks for it (``benchmarks/bench_robustness.py``);
the robustness tests run the torch model. Its weights start at zero, so runs differ only
through the data, the seeds of the batch order and the defense.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fedsilo.datasets import SiloData
from fedsilo.protocol import Weights
from fedsilo.trainer import EvaluateConfig, EvaluateResult, FitConfig, FitResult

Matrix = npt.NDArray[np.float64]


def _softmax(logits: Matrix) -> Matrix:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities: Matrix = shifted / shifted.sum(axis=1, keepdims=True)
    return probabilities


class NumpyLogistic:
    """One silo's logistic regression: ``fit`` runs ``local_epochs`` of mini-batch SGD with momentum."""

    def __init__(self, data: SiloData) -> None:
        self.data = data
        self._x = data.train_x.reshape(len(data.train_x), -1).astype(np.float64)
        features = self._x.shape[1]
        self._weight = np.zeros((data.num_classes, features))
        self._bias = np.zeros(data.num_classes)

    def get_weights(self) -> Weights:
        """The model as named float32 tensors, as the torch model names them."""
        return {"linear.weight": self._weight.astype(np.float32), "linear.bias": self._bias.astype(np.float32)}

    def set_weights(self, weights: Weights) -> None:
        """Take ``weights`` (the global model)."""
        self._weight = weights["linear.weight"].astype(np.float64)
        self._bias = weights["linear.bias"].astype(np.float64)

    def fit(self, config: FitConfig) -> FitResult:
        """Mini-batch SGD in an order seeded by the job seed, the round and the silo (as the torch client)."""
        records = len(self.data.train_y)
        if records == 0:
            raise ValueError("this silo has no training records")
        rng = np.random.default_rng([config.seed, config.round, self.data.silo_index or 0])
        velocity: tuple[Matrix, Matrix] | None = None
        loss_sum, steps = 0.0, 0
        for _ in range(config.local_epochs):
            order = rng.permutation(records)
            for start in range(0, records, config.batch_size):
                batch = order[start : start + config.batch_size]
                x, y = self._x[batch], self.data.train_y[batch]
                probabilities = _softmax(x @ self._weight.T + self._bias)
                loss_sum += float(-np.log(probabilities[np.arange(len(y)), y] + 1e-12).sum())
                probabilities[np.arange(len(y)), y] -= 1.0
                probabilities /= len(y)
                gradient = (probabilities.T @ x, probabilities.sum(axis=0))
                # torch.optim.SGD: the first step's buffer is the gradient itself.
                velocity = (
                    gradient
                    if velocity is None
                    else (
                        config.momentum * velocity[0] + gradient[0],
                        config.momentum * velocity[1] + gradient[1],
                    )
                )
                self._weight -= config.learning_rate * velocity[0]
                self._bias -= config.learning_rate * velocity[1]
                steps += 1
        return FitResult(
            num_samples=records,
            train_loss=loss_sum / (records * config.local_epochs),
            steps=steps,
            batch_size=config.batch_size,
        )

    def evaluate(self, config: EvaluateConfig) -> EvaluateResult:
        """Held-out loss and accuracy of the current weights (``nan`` without held-out records)."""
        if len(self.data.test_y) == 0:
            return EvaluateResult(loss=float("nan"), accuracy=float("nan"), num_samples=0)
        x = self.data.test_x.reshape(len(self.data.test_x), -1).astype(np.float64)
        probabilities = _softmax(x @ self._weight.T + self._bias)
        y = self.data.test_y
        loss = float(-np.log(probabilities[np.arange(len(y)), y] + 1e-12).mean())
        return EvaluateResult(loss=loss, accuracy=float((probabilities.argmax(axis=1) == y).mean()), num_samples=len(y))
