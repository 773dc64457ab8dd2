"""Resolving ``spec.model`` to a ``TrainerClient``: a built-in model or a user factory.

The trainer process calls ``build_client`` with its silo's data; the hub calls
``initial_weights`` to create round 0's global model with the same seed, so every silo
and the hub start from identical weights. The centralized baseline builds its client
here too, so it trains exactly the model the silos train.
"""

from __future__ import annotations

import importlib

import torch

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import SiloData
from fedsilo.protocol import Weights

from ._client import TrainerClient
from ._models import build_model
from ._personal import PersonalizedClient, private_parameters
from ._torch_client import TorchClassifierClient


class FactoryError(ValueError):
    """``spec.model.factory`` cannot be used; the message names it and says why."""


def _user_client(factory: str, spec: FederatedJobSpec, data: SiloData) -> TrainerClient:
    module_name, _, attribute = factory.partition(":")
    where = f"spec.model.factory {factory!r}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise FactoryError(
            f"{where}: cannot import {module_name!r} ({error}); put it on the trainer's PYTHONPATH "
            "(locally: beside the manifest; in a cluster: in the trainer image)"
        ) from error
    except Exception as error:  # any failure of user code at import time is the factory's fault
        raise FactoryError(f"{where}: importing {module_name!r} failed: {type(error).__name__}: {error}") from error
    make = getattr(module, attribute, None)
    if not callable(make):
        raise FactoryError(f"{where}: module {module_name!r} has no callable {attribute!r}")
    try:
        client = make(spec, data)
    except Exception as error:  # reported with the factory's name rather than a bare traceback
        raise FactoryError(f"{where} raised {type(error).__name__}: {error}") from error
    if not isinstance(client, TrainerClient):
        raise FactoryError(
            f"{where} returned {type(client).__name__}, which lacks the fedsilo.trainer.TrainerClient methods "
            "get_weights, set_weights, fit and evaluate"
        )
    return client


def build_client(spec: FederatedJobSpec, data: SiloData) -> TrainerClient:
    """The client for this job's model on ``data``, initialised from ``spec.seed``.

    A job with private parameters (``spec.personalization``) gets a ``PersonalizedClient``:
    its weights are the shared parameters only.

    Raises:
        FactoryError: ``spec.model.factory`` cannot be imported, fails, or returns
            something that is not a ``TrainerClient``.
        PersonalizationError: the job's private parameters do not fit the model.
    """
    # The same seed in every trainer and on the hub: identical initial weights everywhere.
    torch.manual_seed(spec.seed)
    if spec.model.factory is not None:
        client = _user_client(spec.model.factory, spec, data)
    else:
        client = TorchClassifierClient(build_model(spec.model, data.input_shape, data.num_classes), data)
    model = getattr(client, "model", None)
    private = private_parameters(
        spec.personalization, list(client.get_weights()), model if isinstance(model, torch.nn.Module) else None
    )
    return PersonalizedClient(client, private) if private else client


def initial_weights(spec: FederatedJobSpec, data: SiloData) -> Weights:
    """Round 0's global model: what every silo's client starts from with the job's seed."""
    return build_client(spec, data).get_weights()
