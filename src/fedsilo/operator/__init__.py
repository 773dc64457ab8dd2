"""The fedsilo operator (kopf): aggregators on the hub, identities and pods in the silos.

The hub role builds each FederatedJob's aggregator; the silo role each Silo's identity and
its trainer and sidecar pods for every job that names it.

The command line calls :func:`run_operator`; tests run :func:`build_registry` with
:func:`operator_settings` in ``kopf.testing.KopfRunner``. The builders are pure functions
(``hub_objects``, ``silo_support_objects``, ``silo_pods``) so what a job turns into can be
checked without a cluster.
"""

from ._admission import PolicyParameters as PolicyParameters
from ._config import OperatorConfig as OperatorConfig
from ._config import OperatorRole as OperatorRole
from ._handlers import build_registry as build_registry
from ._hub_objects import HubInputs as HubInputs
from ._hub_objects import hub_objects as hub_objects
from ._hub_objects import load_policy_files as load_policy_files
from ._names import WORKLOAD_NAMESPACE_ANNOTATION as WORKLOAD_NAMESPACE_ANNOTATION
from ._run import operator_settings as operator_settings
from ._run import peering_name as peering_name
from ._run import run_operator as run_operator
from ._silo_objects import SiloInputs as SiloInputs
from ._silo_objects import silo_pods as silo_pods
from ._silo_objects import silo_support_objects as silo_support_objects

__all__ = [
    "WORKLOAD_NAMESPACE_ANNOTATION",
    "HubInputs",
    "OperatorConfig",
    "OperatorRole",
    "PolicyParameters",
    "SiloInputs",
    "build_registry",
    "hub_objects",
    "load_policy_files",
    "operator_settings",
    "peering_name",
    "run_operator",
    "silo_pods",
    "silo_support_objects",
]
