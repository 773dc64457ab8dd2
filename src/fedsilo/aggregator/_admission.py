"""Admission of one update: an ordered list of steps, then the policy, then the aggregate.

``Admission.steps`` reads top to bottom as the update's way through the hub:

1. ``verify_signature``: the silo's registered key, the metadata parsed strictly
   (``UpdateMetadata``, every field bounded), the signature, the signer is the caller;
2. ``check_freshness``: a round is open for updates, the nonce is new, the round and job
   are the open ones, the silo is expected and has not sent yet;
   ``check_standing``: the silo is not suspended (``Standing``, taken at the round boundary);
3. ``check_compatibility``: the signed runtime and model architecture against the job's
   (``update_incompatible``): the fedsilo release among the job's pinned ones, if it pins
   any, and the architecture fingerprint equal to the hub's model's;
4. ``check_claims``: the claimed shape and record count against the round's;
   ``check_compression``: the signed compression settings are the round's (its level and,
   for a shared subset, exactly its coordinates);
5. ``check_privacy``: the signed mechanism and epsilon (``PrivacyBook.check``);
6. ``read_payload``: one upload per silo, a bounded number at once, the streamed payload
   (size, dtype, finiteness) and its digest against the signed one;
7. ``check_ciphertexts``: in homomorphic mode, the payload's ciphertexts: the round's joint
   key, chunks never admitted before, each a SEAL ciphertext of the job's parameters;
8. ``check_cleartext``: in plain mode, the payload's real norm, weight and length against
   the signed claims;

and then always ``_decide``: the policy decision, the audit record of what took effect,
and only then the aggregate. A step returns or raises ``fedsilo.policy.Refusal`` with one
``Reason``; the first refusal ends the steps and becomes a fact of the policy input
(``update.transport_problem``, or the facts the policy judges itself: signature, replay,
round), so every refusal is decided and recorded in one place. Adding a check (a
compressor's, a robust aggregator's) is adding one step to the list.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from fedsilo.api import FederatedJob, PrivacyMode
from fedsilo.identity import VerifyKey
from fedsilo.policy import (
    Decision,
    JobFacts,
    LedgerFacts,
    Reason,
    Refusal,
    SiloFacts,
    UpdateFacts,
    UpdatePolicyInput,
)
from fedsilo.protocol import PolicyVerdict, RoundCompression, StreamError, UpdateMetadata

from ._anomaly import AnomalyScores
from ._attribution import AttributedRefusal, SeenNonces, verify_signed
from ._bounds import SignedContribution
from ._claims import check_cleartext_claims
from ._contracts import PrivacyBook, RoundObserver, UpdateGate
from ._metrics import update_decided
from ._phases import PhaseClosed
from ._round import OpenRound
from ._standing import Standing
from ._uploads import UploadSlots

log = logging.getLogger("fedsilo.aggregator")

Chunk = tuple[int, str, npt.NDArray[np.generic]]
Step = Callable[["Submission"], None]

# Reasons the policy derives itself from the input's facts (signature_valid, nonce_seen,
# the two rounds); every other refusal reaches it as update.transport_problem.
_JUDGED_BY_POLICY: Final = frozenset({Reason.SIGNATURE_INVALID, Reason.NONCE_REPLAYED, Reason.STALE_ROUND})


@dataclass
class Submission:
    """One update on its way through the steps: what arrived and what the steps found."""

    silo: str
    metadata_json: bytes
    signature: bytes
    chunks: Iterable[Chunk]
    round: OpenRound | None = None
    claims: UpdateMetadata | None = None
    signature_valid: bool = False
    nonce_seen: bool = False
    payload_digest: str = ""
    # What a step holds until the decision takes effect (an upload slot).
    holds: ExitStack = field(default_factory=ExitStack)

    def open_round(self) -> OpenRound:
        """The round the update was checked against (set by ``check_freshness``)."""
        assert self.round is not None, "check_freshness runs before the steps that need the round"
        return self.round

    def verified_claims(self) -> UpdateMetadata:
        """The signed claims (set by ``verify_signature``)."""
        assert self.claims is not None, "verify_signature runs first"
        return self.claims


class Admission:
    """Decides every update of one job; the one path into ``Aggregation.admit``."""

    def __init__(
        self,
        job: FederatedJob,
        keys: Mapping[str, VerifyKey],
        gate: UpdateGate,
        cond: threading.Condition,
        current: Callable[[], OpenRound | None],
        *,
        nonces: SeenNonces,
        uploads: UploadSlots,
        privacy: PrivacyBook | None = None,
        silo_ceilings: Mapping[str, float | None] | None = None,
        observer: RoundObserver | None = None,
        architecture: str,
        anomaly: AnomalyScores | None = None,
        standing: Standing | None = None,
    ) -> None:
        self.job = job
        # The keys and suspensions of the round now open (``keys`` is ``standing.keys`` when given).
        self._standing = standing if standing is not None else Standing(keys)
        # ``architecture_fingerprint`` of the hub's model: every round's model has this one.
        self._architecture = architecture
        pinned = job.spec.policy.fedsilo_versions
        self._versions = frozenset(pinned) if pinned is not None else None
        self._keys = self._standing.keys
        self._gate = gate
        self._cond = cond
        self._current = current
        self._nonces = nonces
        self._uploads = uploads
        self._privacy = privacy
        self._silo_ceilings = dict(silo_ceilings or {})
        self._observer = observer
        self._anomaly = anomaly or AnomalyScores()
        self.steps: tuple[Step, ...] = (
            self.verify_signature,
            self.check_freshness,
            self.check_standing,
            self.check_compatibility,
            self.check_claims,
            self.check_compression,
            self.check_privacy,
            self.read_payload,
            self.check_ciphertexts,
            self.check_cleartext,
        )

    def submit(self, silo: str, metadata_json: bytes, signature: bytes, chunks: Iterable[Chunk]) -> PolicyVerdict:
        """Run the steps, decide, record and (if allowed) admit one update. Never raises for bad input."""
        submission = Submission(silo, metadata_json, signature, chunks)
        with submission.holds:
            refusal = None
            try:
                for step in self.steps:
                    step(submission)
            except Refusal as refused:
                refusal = refused
            verdict = self._decide(submission, refusal)
        if self._observer is not None and submission.round is not None:
            self._observer.update_decided(submission.round.plan.round, silo, verdict)
        return verdict

    def reserve_upload(self, silo: str, round_number: int) -> float:
        """Keep an upload slot for ``silo``'s update of this round; the seconds it is kept.

        ``PhaseClosed`` unless the round's input step is open to ``silo``; ``Refusal(UPLOAD_BUSY)``
        if no slot frees before the step's deadline. A reservation decides nothing: the update
        that follows goes through every step, and is refused as ever if no slot is free for it.
        """
        with self._cond:
            current = self._current()
            if current is None or current.aggregation is None:
                raise PhaseClosed("no round is accepting updates")
            current.require(silo, round_number)
            current.inputs.check_open(silo)
            timeout = current.inputs.deadline - time.monotonic()
        return self._uploads.reserve(silo, timeout)

    def withdraw_reservation(self, silo: str) -> None:
        """Free the slot kept for ``silo`` (its reservation was answered after its call ended)."""
        self._uploads.withdraw(silo)

    # ----- the steps, in order -------------------------------------------------------------

    def verify_signature(self, submission: Submission) -> None:
        """Attribution first: nothing of an update that is not the caller's own is read."""
        try:
            submission.claims = verify_signed(
                self._keys, submission.silo, submission.metadata_json, submission.signature, UpdateMetadata
            )
        except AttributedRefusal as refused:
            assert isinstance(refused.claims, UpdateMetadata)
            submission.claims = refused.claims
            retired = None
            if refused.reason is Reason.SIGNATURE_INVALID:
                retired = self._standing.retired_key_signed(
                    submission.silo, submission.signature, submission.metadata_json
                )
            if retired is not None:
                raise Refusal(
                    Reason.KEY_RETIRED,
                    f"signed with {submission.silo}'s retired key {retired.fingerprint()}; the registered key is "
                    f"{self._keys[submission.silo].fingerprint()} since a round boundary",
                ) from None
            raise
        submission.signature_valid = True

    def check_freshness(self, submission: Submission) -> None:
        """An open input step, a nonce never used, this round and job, a silo that has not sent yet."""
        claims = submission.verified_claims()
        with self._cond:
            current = self._current()
            if current is None or current.aggregation is None:
                raise Refusal(Reason.NO_OPEN_ROUND, "no round is accepting updates")
            submission.round = current
            current.stats_of(submission.silo).bytes_up += len(submission.metadata_json) + len(submission.signature)
            submission.nonce_seen = not self._nonces.first_use(submission.silo, claims.nonce)
            if submission.nonce_seen:
                raise Refusal(Reason.NONCE_REPLAYED, "the silo already used this nonce")
            if claims.round != current.plan.round:
                raise Refusal(Reason.STALE_ROUND, f"the update is for round {claims.round}")
            if claims.job != self.job.metadata.name:
                raise Refusal(Reason.WRONG_JOB, f"the update is for job {claims.job}")
            if submission.silo not in current.inputs.expected:
                raise Refusal(
                    Reason.NOT_A_SURVIVOR, f"{submission.silo} is not part of round {current.plan.round}'s input step"
                )
            try:
                current.inputs.check_open(submission.silo)
            except PhaseClosed as error:
                raise Refusal(Reason.ROUND_CLOSED, str(error)) from None

    def check_standing(self, submission: Submission) -> None:
        """A suspended silo's update is refused before its payload is read; the reason goes to the audit log."""
        suspension = self._standing.suspension(submission.silo)
        if suspension is not None:
            reason, since = suspension
            raise Refusal(Reason.SILO_SUSPENDED, f"{submission.silo} is suspended since round {since}: {reason}")

    def check_compatibility(self, submission: Submission) -> None:
        """The silo's runtime is one the job allows and its model is the hub's architecture (no payload read)."""
        claims = submission.verified_claims()
        if self._versions is not None and claims.fedsilo_version not in self._versions:
            raise Refusal(
                Reason.UPDATE_INCOMPATIBLE,
                f"fedsilo {claims.fedsilo_version} is not among the job's versions "
                f"({', '.join(sorted(self._versions))}; spec.policy.fedsiloVersions)",
            )
        if claims.architecture != self._architecture:
            raise Refusal(
                Reason.UPDATE_INCOMPATIBLE,
                f"the model architecture {claims.architecture[:23]} is not the job's {self._architecture[:23]} "
                "(parameter names, shapes or dtypes differ)",
            )

    def check_claims(self, submission: Submission) -> None:
        """The claimed shape and record count, against what the round fixed when it opened."""
        claims, current = submission.verified_claims(), submission.open_round()
        if claims.vector_length != current.plan.vector_length:
            raise Refusal(
                Reason.SHAPE_MISMATCH, f"{claims.vector_length} values, the model needs {current.plan.vector_length}"
            )
        if claims.num_samples > current.records.get(submission.silo, 0):
            raise Refusal(Reason.NUM_SAMPLES_INCONSISTENT, "more records than the silo declared when it joined")

    def check_compression(self, submission: Submission) -> None:
        """The update is compressed exactly as the round published: same level, same coordinates."""
        claimed, published = submission.verified_claims().compression, submission.open_round().plan.compression
        if claimed == published:
            return
        if claimed is not None and published is not None:
            subset = ("subset_seed", "subset_offset", "subset_size")
            if any(getattr(claimed, name) != getattr(published, name) for name in subset):
                raise Refusal(
                    Reason.SUBSET_MISMATCH,
                    f"the update sends the coordinates of subset seed {claimed.subset_seed} offset "
                    f"{claimed.subset_offset} size {claimed.subset_size}, not the round's (seed "
                    f"{published.subset_seed} offset {published.subset_offset} size {published.subset_size})",
                )
        raise Refusal(
            Reason.COMPRESSION_MISMATCH,
            f"the update is compressed with {_described(claimed)}, the round with {_described(published)}",
        )

    def check_privacy(self, submission: Submission) -> None:
        """The signed mechanism and epsilon, recomputed by the hub's ledger book."""
        if self._privacy is not None:
            self._privacy.check(submission.silo, submission.verified_claims())

    def read_payload(self, submission: Submission) -> None:
        """Stream the payload into a buffer (one slot per silo, a few at once) and check its digest."""
        current, claims = submission.open_round(), submission.verified_claims()
        assert current.aggregation is not None
        timeout = current.inputs.deadline - time.monotonic()
        submission.holds.enter_context(self._uploads.hold(submission.silo, timeout))
        sink = current.aggregation.open_update(submission.silo)
        stats = current.stats_of(submission.silo)
        started = time.monotonic()
        try:
            for offset, dtype, values in submission.chunks:
                stats.bytes_up += values.nbytes
                stats.upload_bytes += values.nbytes
                sink.add(offset, dtype, values)
            submission.payload_digest = sink.finish()
        except StreamError as error:
            raise Refusal(Reason.PAYLOAD_INVALID, str(error)) from None
        stats.upload_seconds += time.monotonic() - started
        if submission.payload_digest != claims.payload_digest:
            raise Refusal(Reason.PAYLOAD_DIGEST_MISMATCH, "the payload differs from what the silo signed")

    def check_ciphertexts(self, submission: Submission) -> None:
        """Homomorphic mode: the ciphertexts themselves (wrong key, replayed, malformed) before the policy."""
        current = submission.open_round()
        assert current.aggregation is not None
        current.aggregation.check_payload(submission.silo)

    def check_cleartext(self, submission: Submission) -> None:
        """Plain mode holds the update in the clear: its real norm, weight and length must be what was signed."""
        current, claims = submission.open_round(), submission.verified_claims()
        assert current.aggregation is not None
        payload = current.aggregation.cleartext(submission.silo)
        if payload is None:
            return
        check_cleartext_claims(
            payload,
            claims,
            silo_level_dp=self.job.spec.privacy.mode is PrivacyMode.SILO,
            compressed=claims.compression is not None,
        )

    # ----- the decision ----------------------------------------------------------------------

    def _policy_input(self, submission: Submission, current: OpenRound, refusal: Refusal | None) -> UpdatePolicyInput:
        claims = submission.verified_claims()
        budget = None
        if self._privacy is not None and submission.signature_valid:
            budget = self._privacy.policy_view(submission.silo, claims)
        passed_on = refusal if refusal is not None and refusal.reason not in _JUDGED_BY_POLICY else None
        return UpdatePolicyInput(
            job=JobFacts.of(self.job, current.plan.round, current.plan.compression),
            silo=SiloFacts(
                name=submission.silo,
                enrolled=submission.silo in self._keys,
                max_epsilon=self._silo_ceilings.get(submission.silo),
                anomaly_score=self._anomaly.score(submission.silo),
            ),
            update=UpdateFacts.of(claims, signature_valid=submission.signature_valid, refusal=passed_on),
            ledger=LedgerFacts.of(
                nonce_seen=submission.nonce_seen, seen_nonces=self._nonces.count(submission.silo), budget=budget
            ),
        )

    def _decide(self, submission: Submission, refusal: Refusal | None) -> PolicyVerdict:
        current = submission.round
        if current is None:
            with self._cond:
                current = self._current()
        if submission.claims is None or current is None or current.aggregation is None:
            # Nothing to build a policy input from: recorded as the hub's own refusal.
            refused = refusal or Refusal(Reason.NO_OPEN_ROUND, "no round is accepting updates")
            decision = self._gate.refuse(
                job=self.job.metadata.name,
                round_number=current.plan.round if current is not None else 0,
                silo=submission.silo,
                refusal=refused,
            )
            log.warning("update from %s refused before the policy: %s", submission.silo, refused.text)
            update_decided(self.job, submission.silo, False, decision.codes, None)
            return PolicyVerdict(False, decision.reasons)
        policy_input = self._policy_input(submission, current, refusal)
        decision = self._gate.decide(policy_input)
        with self._cond:
            try:
                current.inputs.check_open(submission.silo)
            except PhaseClosed as error:
                closed = Refusal(Reason.ROUND_CLOSED, str(error))
            else:
                return self._take_effect(submission, current, policy_input, decision)
        # The round closed while the policy decided: what takes effect is this refusal, and the
        # record must say so (decided again on the input that says it, so a replay agrees).
        policy_input = self._policy_input(submission, current, refusal or closed)
        decision = self._gate.decide(policy_input)
        self._gate.record(policy_input, decision)
        update_decided(self.job, submission.silo, False, decision.codes, None)
        return PolicyVerdict(False, decision.reasons, decision.policy_revision)

    def _take_effect(
        self, submission: Submission, current: OpenRound, policy_input: UpdatePolicyInput, decision: Decision
    ) -> PolicyVerdict:
        """Record the decision, then post it into the round and admit or exclude the payload (lock held)."""
        assert current.aggregation is not None
        silo, claims = submission.silo, submission.verified_claims()
        self._gate.record(policy_input, decision)
        verdict = PolicyVerdict(decision.allow, decision.reasons, decision.policy_revision)
        current.inputs.post(silo, verdict)
        stats = current.stats_of(silo)
        if verdict.accepted:
            silo_dp = self.job.spec.privacy.mode is PrivacyMode.SILO
            current.aggregation.admit_weighted(silo, 1 if silo_dp else claims.num_samples)
            current.digests[silo] = submission.payload_digest
            silo_level_dp = self.job.spec.privacy.mode is PrivacyMode.SILO
            current.signed[silo] = SignedContribution(
                weight=1.0 if silo_level_dp else float(claims.num_samples), l2_norm=claims.l2_norm
            )
            stats.epsilon_round = claims.epsilon_round
            stats.l2_norm_claim = claims.l2_norm
            if self._privacy is not None:
                stats.epsilon_spent = self._privacy.commit(silo, claims)
        else:
            current.aggregation.exclude(silo, "; ".join(verdict.reasons))
            current.denied[silo] = verdict.reasons
        stats.accepted = verdict.accepted
        stats.reasons = verdict.reasons
        update_decided(self.job, silo, verdict.accepted, decision.codes, time.monotonic() - current.started)
        self._cond.notify_all()
        return verdict


def _described(settings: RoundCompression | None) -> str:
    if settings is None:
        return "no compression"
    return f"{settings.bits} bits in {settings.word_bits}-bit words, top-k {settings.top_k}"
