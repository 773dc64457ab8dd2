"""Job admission: the ``fedsilo.job`` policy decides, before anything of a job is created.

The hub reconciler asks :meth:`JobAdmission.decide` first thing for every FederatedJob; a
denied job gets a ``Denied`` condition with the policy's reasons, a Warning Event and an
admission record in the operator's log, and no child at all (no certificate, no claim, no
aggregator; the silo role waits for the endpoint a denied job never gets).

The policy's parameters are per installation: ``fedsilo operator --policy-params FILE``
(the chart mounts a ConfigMap there) overrides the bundle's ``data.fedsilo.params`` with the
fields of :class:`PolicyParameters`; the same values reach the aggregator's OPA, so the job
and its updates are judged by one set of parameters.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from fedsilo.api import AdmissionRecord, DataClass, FederatedJob
from fedsilo.policy import Decision, JobPolicyInput, PolicyBundle, PolicyEngine, input_digest
from fedsilo.protocol import StrictMessage

log = logging.getLogger(__name__)
#: Admission records go to their own logger, so an installation can route them to its audit sink.
audit_log = logging.getLogger("fedsilo.audit.admission")

#: Where the policy's parameters sit in the bundle (and in the aggregator's policy ConfigMap).
PARAMS_FILE = "fedsilo/params/data.json"

Aggregation = Literal["masked", "homomorphic", "plain"]
#: Data classes are read from JSON strings (the strict base would want enum instances).
DataClassName = Annotated[DataClass, Field(strict=False)]


class PolicyParameters(StrictMessage):
    """The job policy's per-installation parameters; a field left out keeps the bundle's value.

    docs/policy-input.md ("Per-installation parameters") documents each with its default.
    """

    max_bytes: ClassVar[int] = 64 * 1024

    organization_max_epsilon: Annotated[float, Field(gt=0.0, le=1000.0)] | None = Field(
        default=None, description="No job may set a higher epsilon ceiling or target."
    )
    masked_min_silos: Annotated[int, Field(ge=2, le=1000)] | None = Field(
        default=None, description="Fewest silos of a masked job (the API's own floor is 2)."
    )
    allowed_aggregation: dict[DataClassName, list[Aggregation]] | None = Field(
        default=None, description="The aggregation modes each data class may use."
    )
    epsilon_ceiling_required: list[DataClassName] | None = Field(
        default=None, description="Data classes whose private jobs must set policy.maxEpsilon."
    )

    @classmethod
    def read(cls, path: Path) -> PolicyParameters:
        """The parameters in a JSON file; ``MessageError`` names the field that is wrong."""
        return cls.parse(path.read_bytes())

    def overrides(self) -> dict[str, Any]:
        """The parameters that are set, as the bundle's data document spells them."""
        return self.model_dump(mode="json", exclude_none=True)


def with_parameters(files: dict[str, str], parameters: PolicyParameters) -> dict[str, str]:
    """The aggregator's policy files with ``parameters`` merged into the params document."""
    params = json.loads(files[PARAMS_FILE])
    params.update(parameters.overrides())
    return {**files, PARAMS_FILE: json.dumps(params, indent=2, sort_keys=True) + "\n"}


def admission_bundle(parameters: PolicyParameters) -> PolicyBundle:
    """The installed bundle with ``parameters`` in force."""
    return PolicyBundle.load().with_params(parameters.overrides())


class JobAdmission:
    """Decides whether a FederatedJob may run, and records the decision."""

    def __init__(self, engine: PolicyEngine) -> None:
        self.engine = engine

    def decide(self, job: FederatedJob, decided_at: str) -> tuple[Decision, AdmissionRecord]:
        """The policy's decision and its record; raises ``PolicyUnavailable`` when there is none (fail closed)."""
        policy_input = JobPolicyInput.from_job(job)
        decision = self.engine.decide_job(policy_input)
        record = AdmissionRecord(
            allowed=decision.allow,
            reasons=list(decision.reasons),
            policy_revision=decision.policy_revision,
            input_digest=input_digest(policy_input.to_document()),
            decided_at=decided_at,
        )
        where = {"job": f"{job.metadata.namespace}/{job.metadata.name}"}
        audit_log.info("job admission %s", json.dumps({**where, **record.model_dump(mode="json")}, sort_keys=True))
        return decision, record
