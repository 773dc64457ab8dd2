"""Kubernetes adapter: API access, a small JSON client, Events, and the aggregator's status reporter.

The operator builds on this layer; the aggregator pod (``fedsilo.runner.run_aggregator``)
imports only :class:`KubeStatusReporter` from it, never the operator. Nothing here knows
about kopf: an import contract keeps the Kubernetes client in this package and kopf in the
operator.
"""

from ._access import ClusterAccess as ClusterAccess
from ._access import load_access as load_access
from ._client import CONFIG_MAP as CONFIG_MAP
from ._client import DEPLOYMENT as DEPLOYMENT
from ._client import EVENT as EVENT
from ._client import FEDERATED_JOB as FEDERATED_JOB
from ._client import NETWORK_POLICY as NETWORK_POLICY
from ._client import PERSISTENT_VOLUME_CLAIM as PERSISTENT_VOLUME_CLAIM
from ._client import POD as POD
from ._client import ROLE as ROLE
from ._client import ROLE_BINDING as ROLE_BINDING
from ._client import SECRET as SECRET
from ._client import SERVICE as SERVICE
from ._client import SERVICE_ACCOUNT as SERVICE_ACCOUNT
from ._client import SILO as SILO
from ._client import ApiError as ApiError
from ._client import Kind as Kind
from ._client import KubeApi as KubeApi
from ._client import Object as Object
from ._client import kind_of as kind_of
from ._events import EventType as EventType
from ._events import event as event
from ._reporter import JOB_NAME_VARIABLE as JOB_NAME_VARIABLE
from ._reporter import JOB_NAMESPACE_VARIABLE as JOB_NAMESPACE_VARIABLE
from ._reporter import JOB_UID_VARIABLE as JOB_UID_VARIABLE
from ._reporter import POD_NAME_VARIABLE as POD_NAME_VARIABLE
from ._reporter import KubeStatusReporter as KubeStatusReporter

__all__ = [
    "CONFIG_MAP",
    "DEPLOYMENT",
    "EVENT",
    "FEDERATED_JOB",
    "JOB_NAMESPACE_VARIABLE",
    "JOB_NAME_VARIABLE",
    "JOB_UID_VARIABLE",
    "NETWORK_POLICY",
    "PERSISTENT_VOLUME_CLAIM",
    "POD",
    "POD_NAME_VARIABLE",
    "ROLE",
    "ROLE_BINDING",
    "SECRET",
    "SERVICE",
    "SERVICE_ACCOUNT",
    "SILO",
    "ApiError",
    "ClusterAccess",
    "EventType",
    "Kind",
    "KubeApi",
    "KubeStatusReporter",
    "Object",
    "event",
    "kind_of",
    "load_access",
]
