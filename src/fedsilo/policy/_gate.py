"""The policy gate: the one place an update's admission is decided, and always recorded.

The aggregator hands every update's ``UpdatePolicyInput`` to ``PolicyGate.check``. The gate
asks the engine, retries a transient ``PolicyUnavailable`` with bounded exponential backoff
within a deadline, writes the decision to the audit log, and only then returns it. If the
engine stays unavailable the update is denied with a ``policy_unavailable`` reason (fail
closed), and that denial is recorded like any other. If the audit log cannot be written the
gate raises: no decision takes effect unrecorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fedsilo.audit import AuditLog, AuditOperation, SignedHead

from ._decision import Decision
from ._engine import PolicyEngine
from ._errors import PolicyUnavailable
from ._input import UpdatePolicyInput
from ._reasons import Reason, Refusal

log = logging.getLogger("fedsilo.policy")

POLICY_UNAVAILABLE = Reason.POLICY_UNAVAILABLE.value
# The engine name of decisions the hub made without asking an engine (policy unavailable,
# refusals before a policy input exists): nothing to re-run when the log is replayed.
HUB_ENGINE = "hub"
REFUSAL_SCHEMA_VERSION = "fedsilo.refusal/v1"


@dataclass(frozen=True)
class RetryPolicy:
    """How long the gate keeps asking an unavailable engine before it denies."""

    attempts: int = 4
    first_backoff_seconds: float = 0.05
    max_backoff_seconds: float = 1.0
    deadline_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {self.attempts}")
        if self.first_backoff_seconds < 0 or self.max_backoff_seconds < self.first_backoff_seconds:
            raise ValueError("backoffs must satisfy 0 <= first_backoff_seconds <= max_backoff_seconds")
        if self.deadline_seconds <= 0:
            raise ValueError(f"deadline_seconds must be positive, not {self.deadline_seconds}")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_backoff_seconds, self.first_backoff_seconds * 2 ** (attempt - 1)))


class PolicyGate:
    """Decides and records every update. Thread-safe if the engine is (both shipped engines are)."""

    def __init__(
        self,
        engine: PolicyEngine,
        audit: AuditLog,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock

    def decide(self, policy_input: UpdatePolicyInput) -> Decision:
        """Ask the engine, retrying while it is unavailable; deny with ``policy_unavailable`` after that.

        Nothing is recorded yet: the caller records what took effect with ``record`` (an
        allowed update may still be refused as ``round_closed``) before acting on it.
        """
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.engine.decide_update(policy_input)
            except PolicyUnavailable as error:
                elapsed = self._clock() - started
                pause = self.retry.backoff(attempt)
                if attempt >= self.retry.attempts or elapsed + pause > self.retry.deadline_seconds:
                    message = (
                        f"{POLICY_UNAVAILABLE}: no decision from the {self.engine.name} engine after {attempt} "
                        f"attempt(s) in {elapsed:.2f}s, so the update is denied; last error: {error}"
                    )
                    log.error("%s", message)
                    return Decision(False, (message,), "")
                log.warning(
                    "policy engine %s unavailable (attempt %d of %d), retrying in %.2fs: %s",
                    self.engine.name,
                    attempt,
                    self.retry.attempts,
                    pause,
                    error,
                )
                self._sleep(pause)

    def checkpoint(self) -> SignedHead:
        """Sign the audit log's head now: what the round's lineage and the job's status publish."""
        return self.audit.checkpoint()

    def record_operation(
        self, *, job: str, operation: AuditOperation, round_number: int, reason: str, details: Mapping[str, Any]
    ) -> None:
        """Record a decision about the job itself in the audit log, with a signed head over it."""
        self.audit.record_operation(
            job=job, operation=operation, round_number=round_number, reason=reason, details=details
        )

    def record(self, policy_input: UpdatePolicyInput, decision: Decision) -> None:
        """Write the decision that takes effect on one update, durably, before it takes effect."""
        self.audit.record_decision(
            job=policy_input.job.name,
            round_number=policy_input.job.round,
            silo=policy_input.silo.name,
            payload_digest=policy_input.update.payload_digest,
            policy_input=policy_input.to_document(),
            allow=decision.allow,
            reasons=decision.reasons,
            policy_revision=decision.policy_revision,
            engine=self.engine.name,
        )

    def check(self, policy_input: UpdatePolicyInput) -> Decision:
        """Decide and record one update; the decision, returned only once it is durably in the audit log."""
        decision = self.decide(policy_input)
        self.record(policy_input, decision)
        return decision

    def refuse(self, *, job: str, round_number: int, silo: str, refusal: Refusal) -> Decision:
        """Record an update refused before a policy input could be built (unparsable or unattributable metadata).

        The record's input is a ``fedsilo.refusal/v1`` document naming the code; its engine is
        ``hub`` and its policy revision empty, so a replay counts it among the decisions made
        without an engine.
        """
        decision = Decision(False, (refusal.text,), "")
        self.audit.record_decision(
            job=job,
            round_number=round_number,
            silo=silo,
            payload_digest="",
            policy_input={
                "schema_version": REFUSAL_SCHEMA_VERSION,
                "job": job,
                "round": round_number,
                "silo": silo,
                "reason": refusal.reason.value,
            },
            allow=False,
            reasons=decision.reasons,
            policy_revision="",
            engine=HUB_ENGINE,
        )
        return decision
