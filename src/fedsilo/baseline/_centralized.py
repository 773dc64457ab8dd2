"""The centralized baseline: the same model trained on all silos' records pooled together.

What federated learning is measured against: ``fedsilo run`` trains it after the job so
every run reports "federated vs centralized" side by side. It uses the trainer SDK and
the same optimizer settings, with as many epochs as a silo trains in the whole job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import load_pooled_data
from fedsilo.trainer import EvaluateConfig, FitConfig, build_client

# Enough epochs to converge on the bundled sets without making a run wait.
MAX_EPOCHS = 60


@dataclass(frozen=True)
class BaselineResult:
    """Held-out accuracy and loss of the centralized model, per epoch and at the end."""

    accuracy: float
    loss: float
    epochs: int
    accuracy_per_epoch: list[float] = field(default_factory=list)


def train_centralized(
    spec: FederatedJobSpec, num_silos: int, path_overrides: dict[int, str] | None = None
) -> BaselineResult:
    """Train on the pooled training splits; score on the pooled held-out splits."""
    data = load_pooled_data(spec, num_silos, path_overrides)
    client = build_client(spec, data)
    epochs = min(MAX_EPOCHS, spec.rounds * spec.training.local_epochs)
    history: list[float] = []
    training = spec.training
    for epoch in range(1, epochs + 1):
        client.fit(
            FitConfig(
                round=epoch,
                local_epochs=1,
                batch_size=training.batch_size,
                learning_rate=training.learning_rate,
                momentum=training.momentum,
                weight_decay=training.weight_decay,
                seed=spec.seed,
            )
        )
        history.append(client.evaluate(EvaluateConfig(round=epoch)).accuracy)
    final = client.evaluate(EvaluateConfig(round=epochs))
    return BaselineResult(final.accuracy, final.loss, epochs, history)
