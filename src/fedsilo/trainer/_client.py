"""The trainer SDK's one interface: what a model must do to take part in a federated job.

Shaped like Flower's client: a user implements ``TrainerClient`` (or returns one from a
``module:factory`` named in ``spec.model.factory``); the built-in models implement the
same interface. The trainer process calls these methods; nothing else of the model is
visible to fedsilo, and weights travel as named float32 numpy arrays.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from fedsilo.protocol import Weights


@dataclass(frozen=True)
class DpSgdConfig:
    """Record-level DP-SGD parameters the sidecar requires the trainer to run with."""

    noise_multiplier: float
    max_grad_norm: float


@dataclass(frozen=True)
class FitConfig:
    """How to train in one round; built by the server strategy, the same for every silo."""

    round: int
    local_epochs: int
    batch_size: int
    learning_rate: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    # FedProx: adds mu/2 * ||w - w_global||^2 to the local loss (0 is plain FedAvg).
    proximal_mu: float = 0.0
    seed: int = 0
    dp: DpSgdConfig | None = None


@dataclass(frozen=True)
class EvaluateConfig:
    """How to evaluate: which round's global model is being scored."""

    round: int


@dataclass(frozen=True)
class FitResult:
    """What local training did. ``steps`` and ``sample_rate`` are what the sidecar charges for."""

    num_samples: int
    train_loss: float
    steps: int
    batch_size: int
    metrics: dict[str, float] = field(default_factory=dict)
    noise_multiplier: float | None = None
    max_grad_norm: float | None = None
    sample_rate: float | None = None


@dataclass(frozen=True)
class EvaluateResult:
    """Held-out loss and accuracy of the current weights."""

    loss: float
    accuracy: float
    num_samples: int


class TrainerClient(ABC):
    """A model that can be trained federatedly.

    ``set_weights`` receives the global model at the start of every round; ``fit`` trains
    on the silo's own training split starting from it; ``get_weights`` returns the local
    result; ``evaluate`` scores the current weights on the silo's held-out split. Tensor
    names and shapes must stay the same for the whole job.
    """

    @abstractmethod
    def get_weights(self) -> Weights:
        """Return the current weights, as copies."""

    @abstractmethod
    def set_weights(self, weights: Weights) -> None:
        """Replace the current weights; raise ``ValueError`` naming a tensor that does not fit."""

    @abstractmethod
    def fit(self, config: FitConfig) -> FitResult:
        """Train locally from the current weights."""

    @abstractmethod
    def evaluate(self, config: EvaluateConfig) -> EvaluateResult:
        """Score the current weights on the held-out split."""
