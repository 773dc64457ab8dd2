"""The trainer: the SDK a model implements, the built-in models, and the trainer process.

Model authors implement ``TrainerClient`` (or use ``TorchClassifierClient``) and name a
factory in ``spec.model.factory``; ``run_trainer`` (the ``fedsilo trainer`` command)
serves the sidecar's tasks with it. A trainer holds no credential and opens no network
connection; it talks only to its own sidecar.
"""

from fedsilo.strategies import DpSgdConfig as DpSgdConfig
from fedsilo.strategies import FitConfig as FitConfig

from ._client import EvaluateConfig as EvaluateConfig
from ._client import EvaluateResult as EvaluateResult
from ._client import FitResult as FitResult
from ._client import TrainerClient as TrainerClient
from ._factory import FactoryError as FactoryError
from ._factory import build_client as build_client
from ._factory import initial_weights as initial_weights
from ._models import MLP as MLP
from ._models import LogisticRegression as LogisticRegression
from ._models import SmallCNN as SmallCNN
from ._models import build_model as build_model
from ._personal import PersonalizationError as PersonalizationError
from ._personal import PersonalizedClient as PersonalizedClient
from ._personal import fine_tune as fine_tune
from ._personal import private_parameters as private_parameters
from ._process import run_trainer as run_trainer
from ._torch_client import TorchClassifierClient as TorchClassifierClient

__all__ = [
    "MLP",
    "DpSgdConfig",
    "EvaluateConfig",
    "EvaluateResult",
    "FactoryError",
    "FitConfig",
    "FitResult",
    "LogisticRegression",
    "PersonalizationError",
    "PersonalizedClient",
    "SmallCNN",
    "TorchClassifierClient",
    "TrainerClient",
    "build_client",
    "build_model",
    "fine_tune",
    "initial_weights",
    "private_parameters",
    "run_trainer",
]
