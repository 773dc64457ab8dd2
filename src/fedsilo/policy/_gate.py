"""The policy gate: the one place an update's admission is decided, and always recorded.

The aggregator hands every update's policy input to ``PolicyGate.check``. The gate asks
the engine, retries a transient failure a bounded number of times, writes the decision
to the audit log, and only then returns it. If the engine stays unavailable the update
is denied with a ``policy_unavailable`` reason (fail closed) and that denial is recorded.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fedsilo.audit import AuditLog
from fedsilo.protocol import PolicyVerdict

from ._engine import UPDATE_DECISION, PolicyEngine, PolicyUnavailable

log = logging.getLogger("fedsilo.policy")


class PolicyGate:
    """Decides and records. Implements the aggregator's ``UpdateGate``."""

    def __init__(
        self, engine: PolicyEngine, audit: AuditLog, *, attempts: int = 3, backoff_seconds: float = 0.2
    ) -> None:
        self.engine = engine
        self.audit = audit
        self._attempts = attempts
        self._backoff = backoff_seconds

    def _decide(self, document: dict[str, Any]) -> PolicyVerdict:
        problem: PolicyUnavailable | None = None
        for attempt in range(self._attempts):
            try:
                return self.engine.decide(UPDATE_DECISION, document)
            except PolicyUnavailable as error:
                problem = error
                log.warning("policy engine unavailable (attempt %d of %d): %s", attempt + 1, self._attempts, error)
                time.sleep(self._backoff * 2**attempt)
        return PolicyVerdict(False, (f"policy_unavailable: no decision after {self._attempts} attempts ({problem})",))

    def check(self, document: dict[str, Any]) -> PolicyVerdict:
        """The decision on one update, after it is in the audit log."""
        verdict = self._decide(document)
        self.audit.record_decision(
            job=str(document["job"]["name"]),
            round_number=int(document["job"]["round"]),
            silo=str(document["silo"]["name"]),
            payload_digest=str(document["update"]["payload_digest"]),
            policy_input=document,
            allow=verdict.accepted,
            reasons=list(verdict.reasons),
            policy_revision=verdict.policy_revision,
            engine=self.engine.name,
        )
        return verdict
