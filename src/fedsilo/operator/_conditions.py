"""Pure status computation: the phase and the Ready / Progressing / Degraded conditions.

The reconcilers gather facts (what is missing, what failed, whether the aggregator serves,
what the aggregator reported) and these functions turn them into the operator-owned part
of the status. A condition keeps its ``lastTransitionTime`` while its status stays the
same, so recomputing an unchanged status yields the same object and the apply is a no-op.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fedsilo.api import Condition, ConditionType, FederatedJobStatus, JobPhase, JobResult


@dataclass(frozen=True)
class Problem:
    """Something that stops reconciliation: a CamelCase reason and a message saying what to do."""

    reason: str
    message: str


def now() -> str:
    """The current time as Kubernetes writes it."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    type: ConditionType,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    previous: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """One condition; the transition time carries over from ``previous`` if the status did not change."""
    value: Literal["True", "False"] = "True" if status else "False"
    before = next((c for c in previous if c.get("type") == type.value), None)
    since = before["lastTransitionTime"] if before and before.get("status") == value else now()
    written = Condition(
        type=type.value,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    return written.model_dump(by_alias=True, exclude_none=True, mode="json")


#: What a statistics-only job (``spec.rounds: 0``) does, for the messages that would count rounds.
STATISTICS_ONLY_NOTE = "a statistics-only job ends with it and trains no round"


@dataclass(frozen=True)
class JobFacts:
    """What the hub reconciler found out about a job."""

    generation: int
    rounds: int
    problem: Problem | None = None
    waiting: Problem | None = None
    aggregator_available: bool = False
    result: str | None = None
    round: int | None = None
    message: str | None = None
    #: The job policy's reasons when it refused the job.
    denied: tuple[str, ...] | None = None
    #: Whether the job runs a statistics phase before round 1 (spec.data.preprocessing fits a transform).
    statistics_phase: bool = False
    #: What the aggregator published when the phase released (status.statistics), if it did.
    statistics: Mapping[str, Any] | None = None


def _denied_status(facts: JobFacts, reasons: tuple[str, ...], previous: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A job the policy refused: Denied, not Ready, not progressing; the reasons say what to change."""
    generation = facts.generation
    said = "the job policy refused the job; nothing was created: " + "; ".join(reasons)
    return {
        "observedGeneration": generation,
        "phase": JobPhase.DENIED.value,
        "conditions": [
            condition(ConditionType.READY, False, "PolicyDenied", said, generation, previous),
            condition(ConditionType.PROGRESSING, False, "PolicyDenied", said, generation, previous),
            condition(ConditionType.DEGRADED, True, "PolicyDenied", said, generation, previous),
            condition(ConditionType.DENIED, True, "PolicyDenied", said, generation, previous),
        ],
    }


def job_status(facts: JobFacts, previous: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``observedGeneration``, ``phase`` and ``conditions`` of a FederatedJob."""
    if facts.denied is not None:
        return _denied_status(facts, facts.denied, previous)
    generation = facts.generation
    finished = facts.result in (JobResult.SUCCEEDED.value, JobResult.FAILED.value)
    serving = facts.aggregator_available and facts.problem is None and not finished

    if facts.result is not None and finished:
        phase = JobPhase(facts.result)
        outcome = f"Job{phase.value}"
        said = facts.message or f"the aggregator reported {phase.value.lower()}"
        ready = condition(ConditionType.READY, False, outcome, f"the job has ended: {said}", generation, previous)
        progressing = condition(ConditionType.PROGRESSING, False, outcome, said, generation, previous)
    elif facts.problem is not None:
        phase = JobPhase.PENDING
        ready = condition(ConditionType.READY, False, facts.problem.reason, facts.problem.message, generation, previous)
        progressing = condition(
            ConditionType.PROGRESSING, False, facts.problem.reason, facts.problem.message, generation, previous
        )
    elif facts.waiting is not None:
        phase = JobPhase.PENDING
        ready = condition(ConditionType.READY, False, facts.waiting.reason, facts.waiting.message, generation, previous)
        progressing = condition(
            ConditionType.PROGRESSING, True, facts.waiting.reason, facts.waiting.message, generation, previous
        )
    elif serving:
        phase = JobPhase.RUNNING
        done = facts.round or 0
        ready = condition(
            ConditionType.READY,
            True,
            "AggregatorServing",
            "the aggregator accepts silo connections",
            generation,
            previous,
        )
        progressing = (
            condition(
                ConditionType.PROGRESSING,
                True,
                "StatisticsPhase",
                f"the statistics phase runs; {STATISTICS_ONLY_NOTE}",
                generation,
                previous,
            )
            if facts.rounds == 0
            else condition(
                ConditionType.PROGRESSING,
                True,
                "RoundsAdvancing",
                f"{done} of {facts.rounds} rounds completed",
                generation,
                previous,
            )
        )
    else:
        phase = JobPhase.PENDING
        message = "waiting for the aggregator Deployment to report an available replica"
        ready = condition(ConditionType.READY, False, "AggregatorStarting", message, generation, previous)
        progressing = condition(ConditionType.PROGRESSING, True, "AggregatorStarting", message, generation, previous)

    if facts.problem is not None:
        degraded = condition(
            ConditionType.DEGRADED, True, facts.problem.reason, facts.problem.message, generation, previous
        )
    elif facts.result == JobResult.FAILED.value:
        degraded = condition(
            ConditionType.DEGRADED, True, "JobFailed", facts.message or "the job failed", generation, previous
        )
    else:
        degraded = condition(
            ConditionType.DEGRADED, False, "AsExpected", "nothing needs attention", generation, previous
        )

    conditions = [ready, progressing, degraded]
    if facts.statistics_phase:
        conditions.append(_statistics_condition(facts, previous))
    status: dict[str, Any] = {"observedGeneration": generation, "phase": phase, "conditions": conditions}
    if facts.rounds == 0:
        # A statistics-only job's round stays 0 ("0 before the first"): the aggregator reports none.
        status["round"] = 0
    written = FederatedJobStatus.model_validate(status)
    return written.model_dump(by_alias=True, exclude_none=True, mode="json")


def _statistics_condition(facts: JobFacts, previous: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """StatisticsReleased: from the release the aggregator published, or why there is none yet."""
    released = facts.statistics
    if released is not None:
        left_out = len(released.get("excluded") or {})
        message = (
            f"{len(released.get('silos') or [])} silos released statistics over {released.get('features')} features"
            f"{f' ({left_out} left out)' if left_out else ''}; every silo applies the fitted transform "
            f"{released.get('preprocessingDigest')}"
        )
        return condition(
            ConditionType.STATISTICS_RELEASED, True, "StatisticsReleased", message, facts.generation, previous
        )
    if facts.result == JobResult.FAILED.value:
        said = facts.message or "the job failed before the statistics were released"
        return condition(ConditionType.STATISTICS_RELEASED, False, "JobFailed", said, facts.generation, previous)
    message = (
        f"the statistics phase runs once every silo's sidecar and trainer are up; {STATISTICS_ONLY_NOTE}"
        if facts.rounds == 0
        else "the statistics phase runs before round 1, once every silo's sidecar and trainer are up"
    )
    return condition(ConditionType.STATISTICS_RELEASED, False, "StatisticsPending", message, facts.generation, previous)


def silo_conditions(
    generation: int, problem: Problem | None, ready_message: str, previous: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Ready and Degraded of a Silo."""
    if problem is None:
        return [
            condition(ConditionType.READY, True, "IdentityReady", ready_message, generation, previous),
            condition(ConditionType.DEGRADED, False, "AsExpected", "nothing needs attention", generation, previous),
        ]
    return [
        condition(ConditionType.READY, False, problem.reason, problem.message, generation, previous),
        condition(ConditionType.DEGRADED, True, problem.reason, problem.message, generation, previous),
    ]
