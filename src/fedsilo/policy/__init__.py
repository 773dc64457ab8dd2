"""Policy: the Rego bundle, the engines that evaluate it, and the gate every update passes."""

from ._bundle import PolicyBundle as PolicyBundle
from ._bundle import default_bundle_path as default_bundle_path
from ._engine import JOB_DECISION as JOB_DECISION
from ._engine import UPDATE_DECISION as UPDATE_DECISION
from ._engine import EmbeddedRegoEngine as EmbeddedRegoEngine
from ._engine import OpaServerEngine as OpaServerEngine
from ._engine import PolicyEngine as PolicyEngine
from ._engine import PolicyUnavailable as PolicyUnavailable
from ._gate import PolicyGate as PolicyGate

__all__ = [
    "JOB_DECISION",
    "UPDATE_DECISION",
    "EmbeddedRegoEngine",
    "OpaServerEngine",
    "PolicyBundle",
    "PolicyEngine",
    "PolicyGate",
    "PolicyUnavailable",
    "default_bundle_path",
]
