"""The head of a silo's work in every round: the global model is the hub's, unaltered, before any training.

The hub signs every global model it serves (``GlobalModelClaim``: job, the round that made
it, its digest, its parent's and its lineage's) with its audit key, and the round plan
carries the claim and signature. ``ModelCheck`` verifies them against the key the job
publishes (``--aggregator-key``: the run gives it locally, the operator in a cluster), and
the model bytes against the signed digest. Anything else is refused with a stable code
(``ModelRefused``), logged and reported like the sidecar's other refusals, and the trainer
never sees the model:

- ``model_unsigned``: the plan carries no seal;
- ``model_signature_invalid``: the seal is not the job's hub's signature, or its claim is malformed;
- ``model_claim_mismatch``: a validly signed claim about another job, or an older model
  replayed (it must be the model of the round before the plan's);
- ``model_digest_mismatch``: the bytes received are not the model the hub signed or announced.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedsilo.identity import SignatureError, VerifyKey, sha256_digest
from fedsilo.protocol import GlobalModelClaim, MessageError, RoundPlan

from ._pipeline import UpdateRefused


class ModelRefused(UpdateRefused):
    """The global model of a round is not one this silo will train on; ``reason`` starts with its code."""

    verdict_prefix = "refused by sidecar"
    log_phrase = "refused the global model"


@dataclass(frozen=True)
class ModelCheck:
    """Verifies a round's global model against the job's hub key before the trainer gets it."""

    job: str
    aggregator_key: VerifyKey

    def __call__(self, plan: RoundPlan, blob: bytes) -> GlobalModelClaim:
        """The verified claim about ``blob``; ``ModelRefused`` with the reason otherwise."""
        if not plan.model_claim or not plan.model_signature:
            raise ModelRefused(f"model_unsigned: round {plan.round}'s plan carries no signature on its model")
        try:
            self.aggregator_key.verify(plan.model_signature, plan.model_claim)
            claim = GlobalModelClaim.parse(plan.model_claim)
        except SignatureError as error:
            raise ModelRefused(
                f"model_signature_invalid: not signed by the job's aggregator key "
                f"{self.aggregator_key.fingerprint()}: {error.reason}"
            ) from None
        except MessageError as error:
            raise ModelRefused(f"model_signature_invalid: the signed claim is malformed: {error}") from None
        if claim.job != self.job:
            raise ModelRefused(f"model_claim_mismatch: the model was signed for job {claim.job}")
        if claim.round != plan.round - 1:
            raise ModelRefused(
                f"model_claim_mismatch: round {plan.round} must start from round {plan.round - 1}'s model, "
                f"the signed one is round {claim.round}'s"
            )
        received = sha256_digest(blob)
        if received != claim.model_digest or claim.model_digest != plan.model_digest:
            raise ModelRefused(
                f"model_digest_mismatch: received {received[:23]}, the hub signed {claim.model_digest[:23]} "
                f"and announced {plan.model_digest[:23]}"
            )
        return claim
