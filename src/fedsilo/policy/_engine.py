"""The policy engine interface: one ABC, two implementations that run the same Rego bundle.

``EmbeddedRegoEngine`` (rego-cpp, in process) serves the local run; ``OpaServerEngine``
asks an OPA server (in a cluster, the container beside the aggregator). Callers use
``decide_update``/``decide_job``; implementations provide ``evaluate``. Every engine fails
closed: when it cannot decide it raises ``PolicyUnavailable``, never answers allow.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from ._decision import Decision
from ._input import JobPolicyInput, UpdatePolicyInput

UPDATE_DECISION = "fedsilo/update/decision"
JOB_DECISION = "fedsilo/job/decision"


class PolicyEngine(ABC):
    """Decides policy inputs with the fedsilo Rego bundle."""

    name: str

    @abstractmethod
    def evaluate(self, decision_path: str, document: Mapping[str, Any]) -> object:
        """The raw value of ``data.<decision_path>`` for ``document``; raise ``PolicyUnavailable`` if none."""

    def decide(self, decision_path: str, document: Mapping[str, Any]) -> Decision:
        """The checked decision at ``decision_path`` for a raw document (e.g. one stored in the audit log)."""
        return Decision.from_result(self.evaluate(decision_path, document), self.name)

    def decide_many(self, decision_path: str, documents: Sequence[Mapping[str, Any]]) -> list[Decision]:
        """One decision per document, in order; engines with a cheaper bulk path override this."""
        return [self.decide(decision_path, document) for document in documents]

    def decide_update(self, policy_input: UpdatePolicyInput) -> Decision:
        """Allow or deny one model update."""
        return self.decide(UPDATE_DECISION, policy_input.to_document())

    def decide_updates(self, policy_inputs: Sequence[UpdatePolicyInput]) -> list[Decision]:
        """Allow or deny many updates at once (re-deciding a log, bulk checks); same decisions as one by one."""
        return self.decide_many(UPDATE_DECISION, [policy_input.to_document() for policy_input in policy_inputs])

    def decide_job(self, policy_input: JobPolicyInput) -> Decision:
        """Admit or refuse a FederatedJob."""
        return self.decide(JOB_DECISION, policy_input.to_document())

    def close(self) -> None:  # noqa: B027 - engines without resources need not override it
        """Release connections or interpreters."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
