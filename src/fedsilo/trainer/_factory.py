"""Resolving ``spec.model`` to a ``TrainerClient``: a built-in model or a user factory.

The trainer process calls ``build_client`` with its silo's data; the hub calls
``initial_weights`` to create round 0's global model with the same seed, so every silo
and the hub start from identical weights.
"""

from __future__ import annotations

import importlib

import torch

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import SiloData
from fedsilo.protocol import Weights

from ._client import TrainerClient
from ._models import build_model
from ._torch_client import TorchClassifierClient


class FactoryError(ValueError):
    """``spec.model.factory`` cannot be used; the message says why and what to do."""


def _user_client(factory: str, spec: FederatedJobSpec, data: SiloData) -> TrainerClient:
    module_name, _, attribute = factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise FactoryError(
            f"spec.model.factory: cannot import {module_name!r} ({error}); put it on the trainer's PYTHONPATH "
            "(locally: beside the manifest)"
        ) from error
    make = getattr(module, attribute, None)
    if not callable(make):
        raise FactoryError(f"spec.model.factory: {module_name} has no callable {attribute!r}")
    client = make(spec, data)
    if not isinstance(client, TrainerClient):
        raise FactoryError(
            f"spec.model.factory: {factory} returned {type(client).__name__}, not a fedsilo.trainer.TrainerClient"
        )
    return client


def build_client(spec: FederatedJobSpec, data: SiloData) -> TrainerClient:
    """The client for this job's model on this silo's data, initialised from the job's seed."""
    torch.manual_seed(spec.seed)
    if spec.model.factory is not None:
        return _user_client(spec.model.factory, spec, data)
    return TorchClassifierClient(build_model(spec.model, data.input_shape, data.num_classes), data)


def initial_weights(spec: FederatedJobSpec, data: SiloData) -> Weights:
    """Round 0's global model: what every silo's client starts from with the job's seed."""
    return build_client(spec, data).get_weights()
