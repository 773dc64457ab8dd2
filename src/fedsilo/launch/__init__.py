"""What the processes of a job agree on: their command lines, the pod layout, the job manifest, how they stop.

Starters (the local run in ``fedsilo.runner``, the operator's builders in
``fedsilo.operator``) and readers (``fedsilo.cli``) import these definitions instead of
spelling flags, paths and file names themselves, so there is one definition of each.
"""

from ._allocator import HUB_MALLOC_ARENAS as HUB_MALLOC_ARENAS
from ._allocator import bound_allocator_arenas as bound_allocator_arenas
from ._allocator import hub_allocator_environment as hub_allocator_environment
from ._args import AggregatorArgs as AggregatorArgs
from ._args import LaunchArgs as LaunchArgs
from ._args import OperatorRole as OperatorRole
from ._args import SidecarArgs as SidecarArgs
from ._args import TrainerArgs as TrainerArgs
from ._layout import AGGREGATOR_CA_FILE as AGGREGATOR_CA_FILE
from ._layout import AGGREGATOR_KEY as AGGREGATOR_KEY
from ._layout import AGGREGATOR_PUBLIC_KEY as AGGREGATOR_PUBLIC_KEY
from ._layout import DATA_DIR as DATA_DIR
from ._layout import IDENTITY_DIR as IDENTITY_DIR
from ._layout import JOB_DIR as JOB_DIR
from ._layout import LEDGER_DIR as LEDGER_DIR
from ._layout import LEDGER_FILE as LEDGER_FILE
from ._layout import MANIFEST_FILE as MANIFEST_FILE
from ._layout import OPA_CONFIG_DIR as OPA_CONFIG_DIR
from ._layout import OPA_CONFIG_FILE as OPA_CONFIG_FILE
from ._layout import OUTCOME_FILE as OUTCOME_FILE
from ._layout import POLICY_DIR as POLICY_DIR
from ._layout import PRIVACY_LEDGER_FILE as PRIVACY_LEDGER_FILE
from ._layout import REGISTRY_DIR as REGISTRY_DIR
from ._layout import SIDECAR_CA_DIR as SIDECAR_CA_DIR
from ._layout import STATE_DIR as STATE_DIR
from ._layout import TLS_DIR as TLS_DIR
from ._layout import silo_ca_file as silo_ca_file
from ._manifest import manifest_without_standing as manifest_without_standing
from ._manifest import render_job_manifest as render_job_manifest
from ._stopping import Terminated as Terminated
from ._stopping import exit_if_terminated as exit_if_terminated
from ._stopping import raise_on_sigterm as raise_on_sigterm

__all__ = [
    "AGGREGATOR_CA_FILE",
    "AGGREGATOR_KEY",
    "AGGREGATOR_PUBLIC_KEY",
    "DATA_DIR",
    "HUB_MALLOC_ARENAS",
    "IDENTITY_DIR",
    "JOB_DIR",
    "LEDGER_DIR",
    "LEDGER_FILE",
    "MANIFEST_FILE",
    "OPA_CONFIG_DIR",
    "OPA_CONFIG_FILE",
    "OUTCOME_FILE",
    "POLICY_DIR",
    "PRIVACY_LEDGER_FILE",
    "REGISTRY_DIR",
    "SIDECAR_CA_DIR",
    "STATE_DIR",
    "TLS_DIR",
    "AggregatorArgs",
    "LaunchArgs",
    "OperatorRole",
    "SidecarArgs",
    "Terminated",
    "TrainerArgs",
    "bound_allocator_arenas",
    "exit_if_terminated",
    "hub_allocator_environment",
    "manifest_without_standing",
    "raise_on_sigterm",
    "render_job_manifest",
    "silo_ca_file",
]
