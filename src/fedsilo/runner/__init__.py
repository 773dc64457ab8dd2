"""Running jobs: the local run (``fedsilo run``), the aggregator pod (``fedsilo aggregator``) and the hub both build."""

from ._aggregator import AggregatorConfigError as AggregatorConfigError
from ._aggregator import AggregatorEnvironmentError as AggregatorEnvironmentError
from ._aggregator import Terminated as Terminated
from ._aggregator import run_aggregator as run_aggregator
from ._gate import AUDIT_LOG as AUDIT_LOG
from ._gate import build_gate as build_gate
from ._hub import AGGREGATOR_KEY as AGGREGATOR_KEY
from ._hub import AGGREGATOR_PUBLIC_KEY as AGGREGATOR_PUBLIC_KEY
from ._hub import Hub as Hub
from ._hub import HubSetupError as HubSetupError
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
from ._report import RoundRow as RoundRow
from ._report import RunReport as RunReport
from ._report import render_table as render_table
from ._report import write_plot as write_plot
from ._report import write_privacy_plot as write_privacy_plot
from ._reporting import RecordingRegistry as RecordingRegistry
from ._reporting import ReportingObserver as ReportingObserver

__all__ = [
    "AGGREGATOR_KEY",
    "AGGREGATOR_PUBLIC_KEY",
    "AUDIT_LOG",
    "AggregatorConfigError",
    "AggregatorEnvironmentError",
    "Hub",
    "HubSetupError",
    "Isolation",
    "LocalRun",
    "RecordingRegistry",
    "RecoveryError",
    "RecoveryReport",
    "ReportingObserver",
    "RoundRow",
    "RunOptions",
    "RunReport",
    "RunState",
    "Terminated",
    "aggregator_signing_key",
    "build_gate",
    "build_hub",
    "detect_isolation",
    "read_run_state",
    "registered_silo_keys",
    "render_table",
    "rollback",
    "run_aggregator",
    "unlearn",
    "write_plot",
    "write_privacy_plot",
]
