"""Policy: the Rego bundle, the engines that evaluate it, and the gate every update passes.

The aggregator builds an ``UpdatePolicyInput`` per update and calls ``PolicyGate.check``,
which decides with a ``PolicyEngine`` (``EmbeddedRegoEngine`` locally, ``OpaServerEngine``
in a cluster), records the decision in the audit log and returns it. The operator admits
jobs with ``engine.decide_job(JobPolicyInput.from_job(job))``.
"""

from ._bundle import PolicyBundle as PolicyBundle
from ._bundle import default_bundle_path as default_bundle_path
from ._decision import Decision as Decision
from ._decision import decision_digest as decision_digest
from ._decision import input_digest as input_digest
from ._embedded import EmbeddedRegoEngine as EmbeddedRegoEngine
from ._engine import JOB_DECISION as JOB_DECISION
from ._engine import UPDATE_DECISION as UPDATE_DECISION
from ._engine import PolicyEngine as PolicyEngine
from ._errors import PolicyUnavailable as PolicyUnavailable
from ._gate import HUB_ENGINE as HUB_ENGINE
from ._gate import POLICY_UNAVAILABLE as POLICY_UNAVAILABLE
from ._gate import PolicyGate as PolicyGate
from ._gate import RetryPolicy as RetryPolicy
from ._input import JOB_SCHEMA_VERSION as JOB_SCHEMA_VERSION
from ._input import UPDATE_SCHEMA_VERSION as UPDATE_SCHEMA_VERSION
from ._input import BudgetView as BudgetView
from ._input import JobFacts as JobFacts
from ._input import JobPolicyInput as JobPolicyInput
from ._input import JobSpecFacts as JobSpecFacts
from ._input import LedgerFacts as LedgerFacts
from ._input import PolicyInputError as PolicyInputError
from ._input import PrivacyFacts as PrivacyFacts
from ._input import SiloFacts as SiloFacts
from ._input import UpdateFacts as UpdateFacts
from ._input import UpdatePolicyInput as UpdatePolicyInput
from ._input import input_json_schemas as input_json_schemas
from ._reasons import Reason as Reason
from ._reasons import Refusal as Refusal
from ._replay import ReplayMismatch as ReplayMismatch
from ._replay import ReplayReport as ReplayReport
from ._replay import replay_audit_log as replay_audit_log
from ._server import OpaServerEngine as OpaServerEngine
from ._server import opa_config as opa_config
from ._server import opa_run_args as opa_run_args

__all__ = [
    "HUB_ENGINE",
    "JOB_DECISION",
    "JOB_SCHEMA_VERSION",
    "POLICY_UNAVAILABLE",
    "UPDATE_DECISION",
    "UPDATE_SCHEMA_VERSION",
    "BudgetView",
    "Decision",
    "EmbeddedRegoEngine",
    "JobFacts",
    "JobPolicyInput",
    "JobSpecFacts",
    "LedgerFacts",
    "OpaServerEngine",
    "PolicyBundle",
    "PolicyEngine",
    "PolicyGate",
    "PolicyInputError",
    "PolicyUnavailable",
    "PrivacyFacts",
    "Reason",
    "Refusal",
    "ReplayMismatch",
    "ReplayReport",
    "RetryPolicy",
    "SiloFacts",
    "UpdateFacts",
    "UpdatePolicyInput",
    "decision_digest",
    "default_bundle_path",
    "input_digest",
    "input_json_schemas",
    "opa_config",
    "opa_run_args",
    "replay_audit_log",
]
