"""Personalization in the trainer: the parameters that stay in the silo, and fine-tuning after the last round.

``build_client`` resolves the job's markings (``spec.personalization``) on the model once
(``private_parameters``): entries of ``privateParameters`` by name, ``privateHead`` as the
model's last layer (FedPer), ``privateNormalization`` as its normalization layers (FedBN).
It then wraps the client in ``PersonalizedClient``, whose ``get_weights`` holds only the
shared parameters, so the hub's round-0 model, every update the trainer hands its sidecar
and the architecture fingerprint on both sides cover the shared parameters only; the
private ones live in the trainer's memory, trained every round and never sent.
``fine_tune`` is the closing step: more local epochs on the silo's own data, whose result
is scored and kept, never sent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from torch import nn

from fedsilo.api import FederatedJobSpec, PersonalizationSpec
from fedsilo.protocol import Weights
from fedsilo.strategies import FitConfig

from ._client import EvaluateConfig, EvaluateResult, FitResult, TrainerClient

log = logging.getLogger("fedsilo.trainer")

#: The layers FedBN keeps in each silo: batch, layer, group and instance normalization.
NORMALIZATION_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
)
# Names shown when an entry names nothing: enough to find the right one, bounded for a large model.
_SHOWN_NAMES = 24


class PersonalizationError(ValueError):
    """The job's personalization does not fit the model; the message names the field and the fix."""


def _module_entries(model: nn.Module, prefix: str, module: nn.Module) -> set[str]:
    """The state-dict names of ``module`` (parameters and buffers) as the whole model names them."""
    return {f"{prefix}.{name}" if prefix else name for name in module.state_dict()}


def _head(model: nn.Module) -> set[str]:
    """FedPer's head: the last module, in registration order, that holds parameters of its own."""
    holders = [(name, m) for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    if not holders:
        raise PersonalizationError("spec.personalization.privateHead: the model has no parameters")
    name, module = holders[-1]
    return _module_entries(model, name, module)


def private_parameters(
    personal: PersonalizationSpec | None, names: Sequence[str], model: nn.Module | None
) -> frozenset[str]:
    """The state-dict names of ``names`` the job keeps in each silo.

    ``model`` is the torch module behind the client (None for a user client that exposes
    none, which can then mark parameters by name only).

    Raises:
        PersonalizationError: an entry of ``privateParameters`` names nothing in the model;
            ``privateHead`` or ``privateNormalization`` without a torch model, or a model
            without normalization layers; or nothing would be left to train together.
    """
    if personal is None or not personal.keeps_private:
        return frozenset()
    private: set[str] = set()
    for entry in personal.private_parameters:
        hits = {name for name in names if personal.marks(entry, name)}
        if not hits:
            shown = ", ".join(list(names)[:_SHOWN_NAMES]) + (", ..." if len(names) > _SHOWN_NAMES else "")
            raise PersonalizationError(
                f"spec.personalization.privateParameters: {entry!r} names nothing in the model; "
                f"name a parameter or module of: {shown}"
            )
        private |= hits
    if personal.private_head or personal.private_normalization:
        if model is None:
            raise PersonalizationError(
                "spec.personalization.privateHead and privateNormalization need a torch model (a client with a "
                "`model` attribute, as TorchClassifierClient has); name the parameters in privateParameters instead"
            )
        if personal.private_head:
            private |= _head(model)
        if personal.private_normalization:
            layers = [(n, m) for n, m in model.named_modules() if isinstance(m, NORMALIZATION_LAYERS)]
            if not layers:
                raise PersonalizationError(
                    "spec.personalization.privateNormalization: the model has no normalization layers; set "
                    "spec.model.normalization batch or layer, or remove privateNormalization"
                )
            for name, module in layers:
                private |= _module_entries(model, name, module)
    private &= set(names)
    if private >= set(names):
        raise PersonalizationError(
            "spec.personalization keeps every parameter of the model in the silos: nothing is left to train "
            "together; keep fewer parameters private"
        )
    return frozenset(private)


class PersonalizedClient(TrainerClient):
    """``inner`` with ``private`` parameters that never leave it: the trainer link sees only the shared ones."""

    def __init__(self, inner: TrainerClient, private: frozenset[str]) -> None:
        self.inner = inner
        self.private = private

    def get_weights(self) -> Weights:
        """The shared parameters only."""
        return {name: value for name, value in self.inner.get_weights().items() if name not in self.private}

    def set_weights(self, weights: Weights) -> None:
        """Load the shared parameters; the private ones keep this silo's values.

        Raises:
            ValueError: ``weights`` carries a private parameter (a global model must not hold one).
        """
        carried = sorted(self.private.intersection(weights))
        if carried:
            raise ValueError(f"the global model carries {carried[0]!r}, which the job keeps in each silo")
        own = {name: value for name, value in self.inner.get_weights().items() if name in self.private}
        self.inner.set_weights({**weights, **own})

    def fit(self, config: FitConfig) -> FitResult:
        """Train every parameter, shared and private, on the silo's data."""
        return self.inner.fit(config)

    def evaluate(self, config: EvaluateConfig) -> EvaluateResult:
        """Score the silo's model: the shared parameters with its own private ones."""
        return self.inner.evaluate(config)


def fine_tune(client: TrainerClient, spec: FederatedJobSpec) -> FitResult:
    """Train the final model ``personalization.fineTuneEpochs`` more epochs on the silo's own data; nothing is sent.

    Without DP-SGD even in a private job: the result never leaves the silo, only its score does.
    """
    personal = spec.personalization
    if personal is None or not personal.fine_tune_epochs:
        raise ValueError("the job does not fine-tune (spec.personalization.fineTuneEpochs is 0)")
    training = spec.training
    config = FitConfig(
        round=spec.rounds + 1,
        local_epochs=personal.fine_tune_epochs,
        batch_size=training.batch_size,
        learning_rate=personal.fine_tune_learning_rate or training.learning_rate,
        momentum=training.momentum,
        weight_decay=training.weight_decay,
        seed=spec.seed,
    )
    log.info("fine-tuning the final model for %d epochs", personal.fine_tune_epochs)
    return client.fit(config)
