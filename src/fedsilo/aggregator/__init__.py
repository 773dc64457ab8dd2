"""The aggregator (hub side): rounds, admission of updates, aggregation, the next model.

Signed updates pass the policy gate before masked (or plain) aggregation; the server
strategy turns the aggregate into the next global model, which goes to the registry.
"""

from ._aggregation import Aggregation as Aggregation
from ._aggregation import PlainAggregation as PlainAggregation
from ._aggregation import RoundSum as RoundSum
from ._aggregation import UpdateSink as UpdateSink
from ._anomaly import AnomalyScores as AnomalyScores
from ._checkpoint import CHECKPOINT_DIR as CHECKPOINT_DIR
from ._checkpoint import Checkpoint as Checkpoint
from ._checkpoint import CheckpointDocument as CheckpointDocument
from ._checkpoint import CheckpointError as CheckpointError
from ._checkpoint import Checkpoints as Checkpoints
from ._checkpoint import read_checkpoint as read_checkpoint
from ._compression import CompressionChoice as CompressionChoice
from ._compression import CompressionPlanner as CompressionPlanner
from ._contracts import JobFailed as JobFailed
from ._contracts import PrivacyBook as PrivacyBook
from ._contracts import RoundObserver as RoundObserver
from ._contracts import RoundSummary as RoundSummary
from ._contracts import ServerStrategy as ServerStrategy
from ._contracts import SiloRoundStats as SiloRoundStats
from ._contracts import UpdateGate as UpdateGate
from ._contracts import UpdatesStrategy as UpdatesStrategy
from ._coordinator import JobCoordinator as JobCoordinator
from ._privacy import LedgerBook as LedgerBook
from ._quality import ModelQuality as ModelQuality
from ._quality import SiloScore as SiloScore
from ._service import DOWNLOAD_MESSAGE_BYTES as DOWNLOAD_MESSAGE_BYTES
from ._service import MAX_MESSAGE_BYTES as MAX_MESSAGE_BYTES
from ._service import READ_BUFFER_BYTES as READ_BUFFER_BYTES
from ._service import serve as serve
from ._service import start_server as start_server
from ._sketches import update_distances as update_distances
from ._standing import SiloStanding as SiloStanding
from ._standing import StandingSource as StandingSource
from ._statistics import StatisticsFailed as StatisticsFailed
from ._statistics import StatisticsPhase as StatisticsPhase
from ._statistics import StatisticsRelease as StatisticsRelease
from ._statistics import StatisticsService as StatisticsService
from ._trust import IssuerRetired as IssuerRetired
from ._trust import SiloTrust as SiloTrust
from ._trust import TrustFilesError as TrustFilesError

__all__ = [
    "CHECKPOINT_DIR",
    "DOWNLOAD_MESSAGE_BYTES",
    "MAX_MESSAGE_BYTES",
    "READ_BUFFER_BYTES",
    "Aggregation",
    "AnomalyScores",
    "Checkpoint",
    "CheckpointDocument",
    "CheckpointError",
    "Checkpoints",
    "CompressionChoice",
    "CompressionPlanner",
    "IssuerRetired",
    "JobCoordinator",
    "JobFailed",
    "LedgerBook",
    "ModelQuality",
    "PlainAggregation",
    "PrivacyBook",
    "RoundObserver",
    "RoundSum",
    "RoundSummary",
    "ServerStrategy",
    "SiloRoundStats",
    "SiloScore",
    "SiloStanding",
    "SiloTrust",
    "StandingSource",
    "StatisticsFailed",
    "StatisticsPhase",
    "StatisticsRelease",
    "StatisticsService",
    "TrustFilesError",
    "UpdateGate",
    "UpdateSink",
    "UpdatesStrategy",
    "read_checkpoint",
    "serve",
    "start_server",
    "update_distances",
]
