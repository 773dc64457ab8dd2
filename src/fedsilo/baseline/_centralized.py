"""The centralized baseline: the same model trained on all silos' records pooled together.

What federated learning is measured against: ``fedsilo run`` trains it after the job so
every run reports "federated vs centralized" side by side. It builds the client the
silos build and uses the same optimizer settings, for as many epochs over the pooled
data as each silo runs over its own data in the whole job.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import FittedPreprocessing, load_pooled_data
from fedsilo.strategies import FitConfig
from fedsilo.trainer import EvaluateConfig, build_client

# Enough epochs to converge on the bundled sets without making a run wait.
MAX_EPOCHS = 60


@dataclass(frozen=True)
class BaselineResult:
    """Held-out accuracy and loss of the centralized model: at the end, and after every epoch."""

    accuracy: float
    loss: float
    epochs: int
    accuracy_per_epoch: tuple[float, ...]
    loss_per_epoch: tuple[float, ...]


def train_centralized(
    spec: FederatedJobSpec,
    num_silos: int,
    path_overrides: dict[int, str] | None = None,
    preprocessing: FittedPreprocessing | None = None,
) -> BaselineResult:
    """Train on the pooled training splits for ``rounds * localEpochs`` epochs (at most ``MAX_EPOCHS``).

    ``path_overrides`` maps silo indices to their own data files, as the silos read them.
    Client-side strategy settings (FedProx's proximal term) do not apply: there is no
    global model to stay near. ``preprocessing`` is the job's fitted transform, applied to
    the pooled records exactly as every silo applies it.
    """
    data = load_pooled_data(spec, num_silos, path_overrides, preprocessing)
    client = build_client(spec, data)
    epochs = min(MAX_EPOCHS, spec.rounds * spec.training.local_epochs)
    accuracy: list[float] = []
    loss: list[float] = []
    for epoch in range(1, epochs + 1):
        client.fit(replace(FitConfig.from_training(spec.training, epoch, spec.seed), local_epochs=1))
        result = client.evaluate(EvaluateConfig(round=epoch))
        accuracy.append(result.accuracy)
        loss.append(result.loss)
    return BaselineResult(accuracy[-1], loss[-1], epochs, tuple(accuracy), tuple(loss))
