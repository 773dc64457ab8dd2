"""Running jobs: the local run (``fedsilo run``), the aggregator pod (``fedsilo aggregator``) and the hub both build."""

from fedsilo.launch import AGGREGATOR_KEY as AGGREGATOR_KEY
from fedsilo.launch import AGGREGATOR_PUBLIC_KEY as AGGREGATOR_PUBLIC_KEY

from ._aggregator import AggregatorConfigError as AggregatorConfigError
from ._aggregator import AggregatorEnvironmentError as AggregatorEnvironmentError
from ._aggregator import run_aggregator as run_aggregator
from ._gate import AUDIT_LOG as AUDIT_LOG
from ._gate import build_gate as build_gate
from ._hub import Hub as Hub
from ._hub import HubSetupError as HubSetupError
from ._hub import adopt_published_key as adopt_published_key
from ._hub import aggregator_signing_key as aggregator_signing_key
from ._hub import build_hub as build_hub
from ._hub import registered_silo_keys as registered_silo_keys
from ._isolation import Isolation as Isolation
from ._isolation import detect_isolation as detect_isolation
from ._local import LocalRun as LocalRun
from ._local import RunOptions as RunOptions
from ._recovery import RecoveryError as RecoveryError
from ._recovery import RecoveryReport as RecoveryReport
from ._recovery import RunState as RunState
from ._recovery import read_run_state as read_run_state
from ._recovery import rollback as rollback
from ._recovery import unlearn as unlearn
from ._report import HubRestart as HubRestart
from ._report import RoundRow as RoundRow
from ._report import RunReport as RunReport
from ._report import render_silo_quality as render_silo_quality
from ._report import render_table as render_table
from ._report import write_plot as write_plot
from ._report import write_privacy_plot as write_privacy_plot
from ._reporting import RecordingRegistry as RecordingRegistry
from ._reporting import ReportingObserver as ReportingObserver
from ._statistics import HubStatistics as HubStatistics
from ._statistics import StatisticsFiles as StatisticsFiles
from ._statistics import run_statistics as run_statistics
from ._statistics import statistics_phase as statistics_phase
from ._statistics import write_statistics as write_statistics
from ._supervised import HubSetup as HubSetup
from ._supervised import RestartObserver as RestartObserver

__all__ = [
    "AGGREGATOR_KEY",
    "AGGREGATOR_PUBLIC_KEY",
    "AUDIT_LOG",
    "AggregatorConfigError",
    "AggregatorEnvironmentError",
    "Hub",
    "HubRestart",
    "HubSetup",
    "HubSetupError",
    "HubStatistics",
    "Isolation",
    "LocalRun",
    "RecordingRegistry",
    "RecoveryError",
    "RecoveryReport",
    "ReportingObserver",
    "RestartObserver",
    "RoundRow",
    "RunOptions",
    "RunReport",
    "RunState",
    "StatisticsFiles",
    "adopt_published_key",
    "aggregator_signing_key",
    "build_gate",
    "build_hub",
    "detect_isolation",
    "read_run_state",
    "registered_silo_keys",
    "render_silo_quality",
    "render_table",
    "rollback",
    "run_aggregator",
    "run_statistics",
    "statistics_phase",
    "unlearn",
    "write_plot",
    "write_privacy_plot",
    "write_statistics",
]
