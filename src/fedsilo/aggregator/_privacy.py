"""The hub's privacy book: ledger facts for the policy, computed from what the silo signed.

Every update of a DP job carries the mechanism its sidecar charged (noise multiplier,
sample rate, steps), signed with the silo's key. The hub does not trust the signed
epsilon number either: it recomputes it from the mechanism with the job's accountant and
refuses a mismatch, refuses a mechanism that is not the job's mode or has less noise than
the job configures, and answers the policy's ``epsilon_spent`` / ``epsilon_if_accepted``
by replaying the silo's charged mechanisms plus this one in its own ledger. An admitted
update is charged (once: job, silo, round and payload digest name the release) before it enters the
aggregate, and acknowledged when the round's aggregate is taken.

A hub resumed after a crash runs its first round again (``resumed_round``). The silos'
updates of that round may already be charged, under the crashed attempt's payload digests;
each silo sends the release it charged again (masked afresh, so under another digest), and
the book takes a charge of that round with the same mechanism as the release's own instead
of refusing it or charging it twice. What the hub cannot see through the masks is whether
the values are the same; the silo's own ledger, which lets a round go out once, guards that.

A job whose statistics phase adds DP noise has a book even when training runs without DP:
the phase charged the hub's ledger at round 0 (``StatisticsCharges``, under the same run
name), so the book publishes the ledger's signed head and each silo's epsilon in the job,
and a DP round's projection composes the statistics release with the training ones. In a
job trained without DP the book charges no update (it reads no mechanism from one).
"""

from __future__ import annotations

import math
from pathlib import Path

from fedsilo.api import FederatedJob, FederatedJobSpec, PrivacyMode
from fedsilo.audit import SignedHead
from fedsilo.identity import SigningKey
from fedsilo.policy import BudgetView, Reason, Refusal
from fedsilo.privacy import DpSgdEvent, GaussianEvent, Mechanism, epsilon_for, mechanism_from_json, mechanism_json
from fedsilo.privacy.ledger import Charge, PrivacyLedger, release_key, run_name
from fedsilo.protocol import UpdateMetadata
from fedsilo.statistics import released_epsilon

# Relative slack between a signed epsilon and the hub's recomputation: both run the same
# accountant on the same numbers, so anything beyond float noise is a different claim.
_EPSILON_TOLERANCE = 1e-6


class LedgerBook:
    """The ``PrivacyBook`` of one job run, over the hub's ``PrivacyLedger``."""

    def __init__(
        self, spec: FederatedJobSpec, ledger: PrivacyLedger, ledger_job: str, resumed_round: int | None = None
    ) -> None:
        self._privacy = spec.privacy
        self._ledger = ledger
        self._job = ledger_job
        self._resumed_round = resumed_round

    @classmethod
    def for_job(
        cls,
        job: FederatedJob,
        ledger: Path,
        run_id: str,
        signing_key: SigningKey | None = None,
        *,
        resumed_round: int | None = None,
    ) -> LedgerBook | None:
        """The book of one run of ``job`` over the ledger file ``ledger``, its charges signed with the hub's key.

        None when the job charges no ledger (no DP in training nor in its statistics).
        ``resumed_round``: the round a resumed hub runs again.
        """
        if not job.spec.charges_silos:
            return None
        return cls(job.spec, PrivacyLedger(ledger, signing_key), run_name(job.metadata.name, run_id), resumed_round)

    def signed_head(self) -> SignedHead | None:
        """The hub ledger's newest signed head, to publish outside the file (the job's status)."""
        return self._ledger.signed_head()

    def close(self) -> None:
        """Close the ledger."""
        self._ledger.close()

    def _key(self, silo: str, claims: UpdateMetadata) -> str:
        return release_key(self._job, silo, claims.round, claims.payload_digest)

    def spent(self) -> dict[str, float]:
        """Each charged silo's epsilon in this run, as the hub's ledger composes it after its newest charge."""
        return {charge.silo: charge.epsilon_job for charge in self._ledger.history(job=self._job)}

    def statistics_spent(self, silos: tuple[str, ...]) -> dict[str, float]:
        """The epsilon each of ``silos`` was charged in this run for the statistics release (the silos charged)."""
        return released_epsilon(self._ledger, self._job, silos)

    def _mechanism(self, claims: UpdateMetadata) -> Mechanism | None:
        if self._privacy.mode is PrivacyMode.NONE:
            # Training without DP charges nothing, whatever an update names (the book is the statistics').
            return None
        document = claims.mechanism_document()
        return None if document is None else mechanism_from_json(document)

    def check(self, silo: str, claims: UpdateMetadata) -> None:
        """Raise a ``Refusal`` naming why the update's privacy claims cannot be accepted; None if they can."""
        mode = self._privacy.mode
        try:
            event = self._mechanism(claims)
        except ValueError as error:
            raise Refusal(Reason.PRIVACY_MECHANISM_INVALID, str(error)) from None
        if event is None:
            if mode is PrivacyMode.NONE:
                return
            raise Refusal(
                Reason.PRIVACY_MECHANISM_MISSING,
                f"the job runs with {mode.value}-level DP but the update names no mechanism",
            )
        expected = DpSgdEvent if mode is PrivacyMode.RECORD else GaussianEvent
        if mode is not PrivacyMode.NONE and not isinstance(event, expected):
            raise Refusal(
                Reason.PRIVACY_MECHANISM_MISMATCH,
                f"the job runs with {mode.value}-level DP, the update declares {event}",
            )
        if isinstance(event, GaussianEvent) and event.count != 1:
            raise Refusal(
                Reason.PRIVACY_MECHANISM_MISMATCH, f"one round is one release, the update declares {event.count}"
            )
        configured = self._privacy.noise_multiplier
        if configured is not None and event.noise_multiplier < configured * (1 - _EPSILON_TOLERANCE):
            raise Refusal(
                Reason.NOISE_BELOW_CONFIGURED,
                f"the update ran with noise multiplier {event.noise_multiplier:g}, the job configures {configured:g}",
            )
        cost = epsilon_for([event], self._privacy.delta, self._privacy.accountant)
        claimed = claims.epsilon_round
        if claimed is None or not math.isclose(claimed, cost, rel_tol=_EPSILON_TOLERANCE, abs_tol=1e-12):
            raise Refusal(
                Reason.EPSILON_CLAIM_MISMATCH,
                f"the update claims epsilon_round {claimed}, its mechanism costs {cost:.6g}",
            )
        earlier = self._ledger.charged(silo, self._job, claims.round)
        if earlier is not None and self._recorded(silo, claims, event) is None:
            raise Refusal(
                Reason.ROUND_ALREADY_CHARGED, f"round {claims.round} was charged to {silo} for another update"
            )

    def policy_view(self, silo: str, metadata: UpdateMetadata) -> BudgetView | None:
        """The silo's epsilon in this job now and if accepted, and the lifetime figure, from the hub's ledger."""
        try:
            event = self._mechanism(metadata)
        except ValueError:
            return None
        if event is None:
            return None
        recorded = self._recorded(silo, metadata, event)
        if recorded is not None:
            # A retried update, or a resumed round's release sent again, already charged: it costs nothing more.
            return BudgetView(recorded.epsilon_job, recorded.epsilon_job, recorded.epsilon_lifetime)
        projection = self._ledger.epsilon_if_accepted(
            silo, self._job, event, delta=self._privacy.delta, accountant=self._privacy.accountant
        )
        return BudgetView(projection.job_spent, projection.job_if_accepted, projection.lifetime_if_accepted)

    def commit(self, silo: str, metadata: UpdateMetadata) -> float | None:
        """Charge an admitted update; the silo's epsilon in this job after it (None without DP)."""
        event = self._mechanism(metadata)
        if event is None:
            return None
        charge = self._ledger.charge(
            silo,
            self._job,
            metadata.round,
            event,
            idempotency_key=self._key(silo, metadata),
            delta=self._privacy.delta,
            accountant=self._privacy.accountant,
            resumed=metadata.round == self._resumed_round,
        )
        return charge.epsilon_job

    def _recorded(self, silo: str, metadata: UpdateMetadata, event: Mechanism) -> Charge | None:
        """The charge this update's release already has: the same payload, or the resumed round's same mechanism."""
        recorded = self._ledger.find(self._key(silo, metadata))
        if recorded is not None or metadata.round != self._resumed_round:
            return recorded
        earlier = self._ledger.charged(silo, self._job, metadata.round)
        same = earlier is not None and mechanism_json(earlier.mechanism) == mechanism_json(event)
        return earlier if same else None

    def round_closed(self, round_number: int, silos: tuple[str, ...]) -> None:
        """The round's aggregate took the updates of ``silos``: acknowledge their charges."""
        # Every admitted update of a DP job was charged: ``problem`` refuses one without a mechanism.
        if self._privacy.mode is PrivacyMode.NONE:
            return
        for silo in silos:
            self._ledger.acknowledge(silo, self._job, round_number)
