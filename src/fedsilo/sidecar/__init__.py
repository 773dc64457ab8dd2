"""The sidecar: a silo's only network path and the only holder of its identity key.

An update's way out is the list ``Sidecar.steps`` returns (``Step`` callables over an
``OutgoingUpdate``, run by ``run_steps``); a step that will not let an update go raises
``UpdateRefused``.
"""

from ._config import SidecarConfig as SidecarConfig
from ._connection import silo_channel as silo_channel
from ._link import TrainerLinkService as TrainerLinkService
from ._link import TrainerResult as TrainerResult
from ._link import start_link_server as start_link_server
from ._pipeline import OutgoingUpdate as OutgoingUpdate
from ._pipeline import Step as Step
from ._pipeline import UpdateRefused as UpdateRefused
from ._pipeline import run_steps as run_steps
from ._sidecar import Sidecar as Sidecar
from ._start import read_aggregator_key as read_aggregator_key
from ._start import run_sidecar as run_sidecar
from ._statistics import take_part as take_part
from ._trainer_statistics import statistics_member as statistics_member
from ._update import InvalidUpdate as InvalidUpdate
from ._update import PreparedUpdate as PreparedUpdate
from ._update import check_trainer_weights as check_trainer_weights
from ._update import prepare_update as prepare_update

__all__ = [
    "InvalidUpdate",
    "OutgoingUpdate",
    "PreparedUpdate",
    "Sidecar",
    "SidecarConfig",
    "Step",
    "TrainerLinkService",
    "TrainerResult",
    "UpdateRefused",
    "check_trainer_weights",
    "prepare_update",
    "read_aggregator_key",
    "run_sidecar",
    "run_steps",
    "silo_channel",
    "start_link_server",
    "statistics_member",
    "take_part",
]
