"""What a closed round leaves behind: its summary, metrics and the model's sealed lineage in the registry.

``seal_model`` is the one place the hub signs a global model: the coordinator seals the
initial model when it starts and ``record_round`` each round's new one, and the seal goes
out with every round plan (sidecars verify it before training) and into the registry
(``fedsilo models verify`` checks it offline).
"""

from __future__ import annotations

import datetime as dt
import time

from fedsilo.api import FederatedJob
from fedsilo.audit import SignedHead
from fedsilo.identity import SigningKey
from fedsilo.protocol import GlobalModelClaim, Weights
from fedsilo.registry import Lineage, ModelRegistry, ModelSeal, lineage_digest

from ._contracts import RoundSummary
from ._metrics import round_recorded
from ._quality import ModelQuality, evaluation_evidence
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
        void=current.void,
        compression=plan.compression,
        compression_reason=current.compression_reason,
        graph=current.graph,
        left=dict(current.left),
    )


def seal_model(key: SigningKey, claim: GlobalModelClaim) -> ModelSeal:
    """The hub's signature (its audit key) over the claim's canonical bytes."""
    document = claim.canonical_bytes()
    return ModelSeal(document, key.sign(document))


def record_round(
    job: FederatedJob,
    registry: ModelRegistry,
    current: OpenRound,
    summary: RoundSummary,
    weights: Weights,
    parent_digest: str,
    key: SigningKey,
    preprocessing_digest: str | None = None,
    *,
    encoded: bytes | None = None,
) -> ModelSeal:
    """Count the round in the metrics, seal its model and store both with the lineage auditors follow.

    The lineage is complete (``created`` stamped here) before it is digested and signed, so
    the registry stores exactly the record the seal names. It carries the silos' signed
    evaluations of the parent model (each silo's score, the worst silo, the spread, and each
    claim with its signature); the final model's are in the run report and the job status.
    ``encoded`` is the model's ``encode_weights`` bytes when the caller has them (see
    ``ModelRegistry.save``).
    """
    name = job.metadata.name
    round_recorded(job, summary)
    lineage = Lineage(
        job=name,
        round=summary.round,
        model_digest=summary.model_digest,
        parent_digest=parent_digest,
        participants=summary.accepted,
        update_digests={s: current.digests[s] for s in summary.accepted},
        metrics={
            "denied": {k: list(v) for k, v in current.denied.items()},
            # The silos' signed scores of the parent model, which they evaluated before training this round.
            "parent_evaluation": evaluation_evidence(
                ModelQuality.of(summary.round - 1, "global", current.evaluations), current.claims
            ),
        },
        strategy=job.spec.strategy.name.value,
        aggregation=current.plan.aggregation,
        evidence={
            name: head.to_json()
            for name, head in (("audit_head", summary.audit_head), ("ledger_head", summary.ledger_head))
            if head is not None
        }
        # The fitted preprocessing the model expects, by digest: inference applies the same transform.
        | ({"preprocessing": preprocessing_digest} if preprocessing_digest else {}),
        created=dt.datetime.now(dt.UTC).isoformat(),
    )
    seal = seal_model(
        key,
        GlobalModelClaim(
            job=name,
            round=summary.round,
            model_digest=summary.model_digest,
            parent_digest=parent_digest,
            lineage_digest=lineage_digest(lineage),
        ),
    )
    registry.save(weights, lineage, seal, encoded=encoded)
    return seal
