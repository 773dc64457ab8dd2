"""The sidecar: a silo's only network path and the only holder of its identity key."""

from ._config import SidecarConfig as SidecarConfig
from ._link import TrainerLinkService as TrainerLinkService
from ._link import TrainerResult as TrainerResult
from ._link import start_link_server as start_link_server
from ._sidecar import Sidecar as Sidecar
from ._update import InvalidUpdate as InvalidUpdate
from ._update import PreparedUpdate as PreparedUpdate
from ._update import check_trainer_weights as check_trainer_weights
from ._update import prepare_update as prepare_update

__all__ = [
    "InvalidUpdate",
    "PreparedUpdate",
    "Sidecar",
    "SidecarConfig",
    "TrainerLinkService",
    "TrainerResult",
    "check_trainer_weights",
    "prepare_update",
    "start_link_server",
]
