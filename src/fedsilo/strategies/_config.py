"""What a strategy asks every silo to do in one round: ``FitConfig`` and its DP-SGD part.

Built by ``Strategy.configure_round`` on the hub and by the centralized baseline, sent
to the trainers as a JSON document, and read by every ``TrainerClient.fit``. It lives
with the strategies, below the trainer, so the hub never imports the trainer (or torch)
to plan a round; ``fedsilo.trainer`` re-exports it for model authors.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedsilo.api import TrainingSpec


@dataclass(frozen=True)
class DpSgdConfig:
    """Record-level DP-SGD: clip every record's gradient, add Gaussian noise to the batch sum."""

    noise_multiplier: float
    max_grad_norm: float
    delta: float


@dataclass(frozen=True)
class FitConfig:
    """How to train in one round; the same for every silo of the round."""

    round: int
    local_epochs: int
    batch_size: int
    learning_rate: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    # FedProx: adds mu/2 * ||w - w_global||^2 to the local loss (0 is plain FedAvg).
    proximal_mu: float = 0.0
    seed: int = 0
    # Set by the privacy layer when the job asks for record-level DP; a client that
    # cannot run DP-SGD must refuse rather than train without it.
    dp: DpSgdConfig | None = None

    @classmethod
    def from_training(cls, training: TrainingSpec, round_number: int, seed: int) -> FitConfig:
        """The plain local-training configuration of ``training`` for ``round_number``."""
        return cls(
            round=round_number,
            local_epochs=training.local_epochs,
            batch_size=training.batch_size,
            learning_rate=training.learning_rate,
            momentum=training.momentum,
            weight_decay=training.weight_decay,
            seed=seed,
        )
