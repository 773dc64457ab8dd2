"""What a closed round leaves behind: its summary, metrics and the model's lineage in the registry."""

from __future__ import annotations

import time

from fedsilo.api import FederatedJob
from fedsilo.audit import SignedHead
from fedsilo.protocol import Weights
from fedsilo.registry import Lineage, ModelRegistry

from ._contracts import RoundSummary
from ._metrics import BYTES, EPSILON, ROUNDS
from ._round import OpenRound


def summarize(
    current: OpenRound,
    accepted: tuple[str, ...],
    model_digest: str,
    audit_head: SignedHead | None,
    ledger_head: SignedHead | None,
) -> RoundSummary:
    """The summary of a round whose aggregate took the updates of ``accepted``."""
    plan = current.plan
    return RoundSummary(
        round=plan.round,
        participants=plan.participants,
        accepted=accepted,
        dropped=tuple(s for s in plan.participants if s not in current.inputs.posted),
        denied=dict(current.denied),
        seconds=time.monotonic() - current.started,
        model_digest=model_digest,
        silos=dict(current.stats),
        audit_head=audit_head,
        ledger_head=ledger_head,
    )


def record_round(
    job: FederatedJob,
    registry: ModelRegistry,
    current: OpenRound,
    summary: RoundSummary,
    weights: Weights,
    parent_digest: str,
) -> None:
    """Count the round in the metrics and store its model with the lineage auditors follow."""
    name = job.metadata.name
    ROUNDS.labels(name, "completed").inc()
    for silo, stats in summary.silos.items():
        BYTES.labels(name, silo, "up").inc(stats.bytes_up)
        BYTES.labels(name, silo, "down").inc(stats.bytes_down)
        if stats.epsilon_spent is not None:
            EPSILON.labels(name, silo).set(stats.epsilon_spent)
    registry.save(
        weights,
        Lineage(
            job=name,
            round=summary.round,
            model_digest=summary.model_digest,
            parent_digest=parent_digest,
            participants=summary.accepted,
            update_digests={s: current.digests[s] for s in summary.accepted},
            metrics={"denied": {k: list(v) for k, v in current.denied.items()}},
            strategy=job.spec.strategy.name.value,
            aggregation=current.plan.aggregation,
            evidence={
                name: head.to_json()
                for name, head in (("audit_head", summary.audit_head), ("ledger_head", summary.ledger_head))
                if head is not None
            },
        ),
    )
