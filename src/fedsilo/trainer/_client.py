"""The trainer SDK's one interface: what a model must do to take part in a federated job.

Shaped like Flower's client: a user implements ``TrainerClient`` (or returns one from a
``module:factory`` named in ``spec.model.factory``); the built-in models implement the
same interface. The trainer process calls these methods; nothing else of the model is
visible to fedsilo, and weights travel as named float32 numpy arrays.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from fedsilo.protocol import Weights

# Re-exported: the round configuration is the strategies' type, read here by every client.
from fedsilo.strategies import DpSgdConfig as DpSgdConfig
from fedsilo.strategies import FitConfig as FitConfig


@dataclass(frozen=True)
class EvaluateConfig:
    """How to evaluate: which round's global model is being scored."""

    round: int


@dataclass(frozen=True)
class FitResult:
    """What local training did.

    ``num_samples`` weights this silo's update in the mean. ``steps``, ``batch_size`` and
    the DP fields are what the sidecar's accountant charges for; leave the DP fields
    ``None`` when the round ran without DP-SGD.
    """

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
    """Held-out loss and accuracy of the current weights (``nan`` when there is no held-out record)."""

    loss: float
    accuracy: float
    num_samples: int


@runtime_checkable
class TrainerClient(Protocol):
    """A model that can be trained federatedly.

    In every round the trainer process calls ``set_weights`` with the global model,
    ``evaluate`` to score it on the silo's held-out split, ``fit`` to train on the silo's
    training split starting from it, and ``get_weights`` to collect the local result.
    Tensor names and shapes must stay the same for the whole job.

    Subclass it to have the type checker hold you to the interface, or just write a
    class with these four methods: ``build_client`` accepts either.
    """

    @abstractmethod
    def get_weights(self) -> Weights:
        """Return the current weights as float32 copies the caller may keep."""

    @abstractmethod
    def set_weights(self, weights: Weights) -> None:
        """Replace the current weights; raise ``ValueError`` naming a tensor that does not fit."""

    @abstractmethod
    def fit(self, config: FitConfig) -> FitResult:
        """Train locally from the current weights as ``config`` says.

        Raise ``ValueError`` when ``config.dp`` is set and the client cannot run DP-SGD:
        training without the privacy the job asked for must never happen silently.
        """

    @abstractmethod
    def evaluate(self, config: EvaluateConfig) -> EvaluateResult:
        """Score the current weights on the held-out split."""
