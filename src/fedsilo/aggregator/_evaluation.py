"""Federated evaluation: silos' signed reports on the model they received, and their weighted mean.

Round r's silos evaluate the model of round r-1 before they train, and report it signed.
A report passes the same attribution as an update (registered key, strict bounded
parsing, signer is the caller), then freshness (this round and job, a new nonce); the
mean is weighted by the reported record counts, each bounded by the protocol, so no
report can overflow or cancel the others' total. Each silo's score is kept too
(``ModelQuality``, ``_quality.py``): the worst silo and the spread are the job's figures
as much as the mean. Scores of fine-tuned models (``stage: personalized``) belong to the
closing evaluation only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from fedsilo.identity import VerifyKey
from fedsilo.policy import Reason, Refusal
from fedsilo.protocol import EvaluationReport, PolicyVerdict

from ._attribution import SeenNonces, verify_signed
from ._contracts import RoundSummary
from ._quality import ModelQuality, SignedEvaluation
from ._round import OpenRound


def receive_evaluation(
    keys: Mapping[str, VerifyKey],
    nonces: SeenNonces,
    job_name: str,
    cond: threading.Condition,
    current: Callable[[], OpenRound | None],
    silo: str,
    data: bytes,
    signature: bytes,
) -> PolicyVerdict:
    """Verify one signed report and keep it for the open round's metrics; the verdict the silo gets."""
    try:
        report = verify_signed(keys, silo, data, signature, EvaluationReport)
        with cond:
            open_round = current()
            if open_round is None or report.round != open_round.plan.round or report.job != job_name:
                raise Refusal(Reason.STALE_ROUND, "evaluation is not for the current round")
            if report.stage == "personalized" and not open_round.plan.evaluate_only:
                raise Refusal(Reason.METADATA_INVALID, "a personalized evaluation belongs to the closing evaluation")
            if not nonces.first_use(silo, report.nonce):
                raise Refusal(Reason.NONCE_REPLAYED, "this evaluation was already received")
            if report.stage == "personalized":
                open_round.personalized[silo] = report
            else:
                open_round.evaluations[silo] = report
                open_round.claims[silo] = SignedEvaluation(report, data, signature)
            open_round.stats_of(silo).bytes_up += len(data) + len(signature)
            cond.notify_all()
    except Refusal as refusal:
        return PolicyVerdict(False, (refusal.text,))
    return PolicyVerdict(True)


def apply_evaluations(current: OpenRound, target: RoundSummary) -> None:
    """Attach the silos' scores of ``target``'s model from ``current``: each silo's, the record-weighted mean, the spread."""
    quality = ModelQuality.of(target.round, "global", current.evaluations)
    if quality is None:
        return
    # Each count is at least 1 and bounded (EvaluationReport), so the total is positive and exact.
    target.loss, target.accuracy = quality.mean_loss, quality.mean_accuracy
    target.quality = quality
    target.personalized = ModelQuality.of(target.round, "personalized", current.personalized)
