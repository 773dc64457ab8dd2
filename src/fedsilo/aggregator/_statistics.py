"""The hub's statistics phase on the aggregator's gRPC service: relay keys, admit signed masked totals, publish.

Before round 1 (``spec.data.preprocessing``) or as a job of its own (``fedsilo stats``),
the aggregator serves ``StatisticsService`` (the ``*Statistics*`` RPCs of the one .proto).
``StatisticsPhase`` runs it: every silo joins with a signed ``StatisticsClaims`` (the width
of its records, or why it declines), then two passes of the secure aggregation training
uses (``fedsilo.statistics.StatisticsHub`` over ``SecAggServer``): key adverts, sealed
shares, each silo's masked words with signed claims, unmasking. Each upload is admitted as
an update is: strictly parsed claims, the silo's signature, its nonce, the payload's digest
and length, then the policy (``phase: statistics`` in the ``fedsilo.update/v1`` input) and
the audit log, which records every decision and the phase's outcome. A private phase charges
each admitted silo's release to the hub's ledger too (``StatisticsCharges``), under the silo's
own key, before its totals enter the sum; the policy's ceilings count it. The hub sees only
masked words and their sum; from the totals it publishes the statistics and fits the
transform the job asks for. Built by ``fedsilo.runner`` (locally and in the aggregator pod).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import grpc
import numpy as np
import numpy.typing as npt

from fedsilo.api import FederatedJob
from fedsilo.datasets import DataError, FittedPreprocessing
from fedsilo.identity import SignatureError, VerifyKey, sha256_digest
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
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.protocol import (
    MessageError,
    PolicyVerdict,
    StatisticsClaims,
    StatisticsStep,
    StreamError,
    masked_words_digest,
    pb,
    rpc,
    statistics_step_to_proto,
    update_chunk_from_proto,
    update_metadata_from_proto,
    verdict_to_proto,
)
from fedsilo.secagg import SecAggAbort, SecAggError
from fedsilo.statistics import (
    PASSES,
    FederatedStatistics,
    HubView,
    StatisticsHub,
    StatisticsPlan,
    fit_preprocessing,
)

from ._contracts import UpdateGate
from ._limits import RateLimits
from ._phases import Phase, PhaseClosed
from ._service import Callers
from ._statistics_charges import StatisticsCharges
from ._trust import SiloTrust

log = logging.getLogger("fedsilo.aggregator")

#: The audit log's name for the phase's outcome (``record_operation``).
STATISTICS_OPERATION: Final = "statistics"
_STEPS = ("advertise", "share", "submit", "unmask")


@dataclass(frozen=True)
class StatisticsRelease:
    """What a finished phase released: the statistics, the fitted transform (if the job asks), the hub's view."""

    statistics: FederatedStatistics
    preprocessing: FittedPreprocessing | None
    hub_view: HubView
    #: Each counted silo's epsilon in the run after the hub's ledger charged the release (empty without DP
    #: or without a hub ledger): the same figure as the silo's own ledger row.
    epsilon_spent: Mapping[str, float] = field(default_factory=dict)


class StatisticsFailed(Exception):
    """The phase ended without statistics; the message names the silos left out and why."""


class StatisticsPhase:
    """One statistics phase at the hub: barriers per step, closed when every silo posted or at the deadline.

    gRPC handler threads post into the open step and wait on one condition; whichever thread
    finds a step complete or past its deadline closes it (``result`` waits and closes too, so
    a phase whose silos all vanished still ends).
    """

    def __init__(
        self,
        job: FederatedJob,
        run: str,
        silo_keys: Mapping[str, VerifyKey],
        gate: UpdateGate,
        *,
        step_seconds: float,
        silo_ceilings: Mapping[str, float | None] | None = None,
        join_seconds: float | None = None,
        ledger: PrivacyLedger | None = None,
    ) -> None:
        """Open the join; it waits ``join_seconds`` (``step_seconds`` when None) for every silo.

        Silo processes that start with the hub, and load their records first, may need longer than a step.
        ``ledger`` is the hub's privacy ledger: a private phase charges each silo whose totals it admits
        there, and the policy's ceilings count it (without one, only the silos' own ledgers are charged).
        """
        self.job = job
        self.run = run
        self._keys = dict(silo_keys)
        self._gate = gate
        self._step_seconds = step_seconds
        self._ceilings = dict(silo_ceilings or {})
        self._charges = StatisticsCharges(ledger) if ledger is not None else None
        self._cond = threading.Condition()
        join_deadline = time.monotonic() + (step_seconds if join_seconds is None else join_seconds)
        self._join: Phase[StatisticsClaims] = Phase("join", frozenset(job.spec.silos), join_deadline)
        self._steps: dict[tuple[int, str], Phase[Any]] = {}
        self._replies: dict[tuple[int, str], dict[str, bytes]] = {}
        self._unmask_body: dict[int, bytes] = {}
        self._nonces: set[tuple[str, str]] = set()
        self._plan: StatisticsPlan | None = None
        self._hub: StatisticsHub | None = None
        self._moments: npt.NDArray[np.float64] | None = None
        self._ranges: dict[int, tuple[float, float]] = {}
        self._step = StatisticsStep(pass_number=0)
        self._release: StatisticsRelease | None = None
        self._failure = ""

    # ----- what the silos call ---------------------------------------------------------------

    def enrolled(self, silo: str) -> bool:
        """Whether ``silo`` is one of the job's silos with a registered key."""
        return silo in self._keys

    def refuse(self, silo: str, refusal: Refusal, pass_number: int = 0) -> Decision:
        """Record a statistics call refused before the policy (or at the gRPC edge: a rate limit); the deny."""
        return self._gate.refuse(job=self.job.metadata.name, round_number=pass_number, silo=silo, refusal=refusal)

    def join(self, silo: str, claims_json: bytes, signature: bytes) -> StatisticsStep:
        """A silo's signed join or decline; once every silo joined (or the deadline passed), pass 1 or the failure."""
        try:
            claims = self._claims(silo, claims_json, signature, "join", 0)
        except Refusal as refusal:
            self.refuse(silo, refusal, 0)
            raise
        with self._cond:
            self._join.post(silo, claims)
            self._cond.notify_all()
            self._await(self._join)
            if claims.declined is not None:
                # A silo that takes no part still trains with the transform the others fit:
                # it hears how the phase ended (and the transform), not just that it began.
                while self._release is None and not self._failure:
                    self._close_expired()
                    self._cond.wait(0.5)
            return self._step

    def advertise(self, silo: str, pass_number: int, body: bytes) -> bytes:
        """A silo's signed key advert for one pass; every valid advert, once the step closes."""
        return self._relay(silo, pass_number, "advertise", body)

    def share(self, silo: str, pass_number: int, body: bytes) -> bytes:
        """A silo's sealed shares for its peers; the shares addressed to it, once the step closes."""
        return self._relay(silo, pass_number, "share", body)

    def submit(
        self,
        silo: str,
        claims_json: bytes,
        signature: bytes,
        chunks: Iterable[tuple[int, str, npt.NDArray[np.generic]]],
    ) -> PolicyVerdict:
        """A silo's signed masked totals for the open pass: admitted (into the pass's sum) or refused, and recorded."""
        with self._cond:
            pass_number = self._step.pass_number
        try:
            claims = self._claims(silo, claims_json, signature, None, pass_number)
            words = self._read_words(claims, chunks)
            policy_input = self._policy_input(silo, claims, pass_number)
        except Refusal as refusal:
            decision = self.refuse(silo, refusal, pass_number)
            self._post_input(silo, pass_number, None, f"{refusal.text}")
            return PolicyVerdict(False, decision.reasons, decision.policy_revision)
        decision = self._gate.decide(policy_input)
        with self._cond:
            step = self._steps.get((pass_number, "submit"))
            if step is None or step.closed or silo not in step.expected or silo in step.posted:
                closed = Refusal(Reason.ROUND_CLOSED, f"the submit step of statistics pass {pass_number} is not open")
                decision = self.refuse(silo, closed, pass_number)
                return PolicyVerdict(False, decision.reasons, decision.policy_revision)
            self._gate.record(policy_input, decision)
            if decision.allow and self._charges is not None:
                # Charged before the totals enter the sum, as an admitted update is (once: pass 2 finds the row).
                assert self._plan is not None
                self._charges.charge(self._plan, silo)
            step.post(silo, words if decision.allow else None)
            if not decision.allow:
                assert self._hub is not None
                self._hub.excluded[silo] = "; ".join(decision.reasons)
            self._cond.notify_all()
        log.info(
            "statistics pass %d from %s: %s", pass_number, silo, "accepted" if decision.allow else decision.reasons
        )
        return PolicyVerdict(decision.allow, decision.reasons, decision.policy_revision)

    def unmask_request(self, silo: str, pass_number: int) -> bytes:
        """What the survivors reveal, once every input of the pass is in (or its deadline passed)."""
        with self._cond:
            step = self._open_step(pass_number, "submit")
            self._await(step)
            body = self._unmask_body.get(pass_number)
            if body is None or silo not in self._steps[(pass_number, "unmask")].expected:
                raise PhaseClosed(self._failure or f"{silo} is not a survivor of statistics pass {pass_number}")
            return body

    def unmask(self, silo: str, pass_number: int, body: bytes) -> StatisticsStep:
        """A survivor's revealed shares; once the pass's total is known, the next pass, or the end."""
        with self._cond:
            step = self._open_step(pass_number, "unmask")
            step.post(silo, body)
            self._cond.notify_all()
            self._await(step)
            return self._step

    def result(self, timeout: float) -> StatisticsRelease:
        """Wait for the phase to end (closing steps whose deadline passed); what it released.

        Raises:
            StatisticsFailed: the phase failed, or did not end within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._release is None and not self._failure:
                if time.monotonic() > deadline:
                    self._fail(f"the statistics phase did not end within {timeout:g}s")
                    break
                self._close_expired()
                self._cond.wait(0.5)
            if self._release is None:
                raise StatisticsFailed(self._failure)
            return self._release

    # ----- admission --------------------------------------------------------------------------

    def _claims(
        self, silo: str, claims_json: bytes, signature: bytes, step: str | None, pass_number: int
    ) -> StatisticsClaims:
        """The signed claims, strictly parsed and verified; a ``Refusal`` naming what is wrong."""
        try:
            claims = StatisticsClaims.parse(claims_json)
        except MessageError as error:
            raise Refusal(Reason.METADATA_INVALID, f"statistics claims: {error}") from error
        if claims.silo != silo:
            raise Refusal(Reason.IDENTITY_MISMATCH, f"the claims name {claims.silo}, the certificate {silo}")
        try:
            self._keys[silo].verify(signature, claims_json)
        except (SignatureError, KeyError) as error:
            raise Refusal(
                Reason.SIGNATURE_INVALID, "the statistics claims do not verify against the silo's registered key"
            ) from error
        if claims.job != self.run:
            raise Refusal(Reason.WRONG_JOB, f"the claims are for {claims.job!r}; this phase is {self.run!r}")
        expected = step or (PASSES[pass_number - 1] if 1 <= pass_number <= len(PASSES) else "")
        if claims.step != expected:
            raise Refusal(
                Reason.STALE_ROUND, f"the claims are for step {claims.step!r}; {expected or 'none'!r} is open"
            )
        with self._cond:
            if (silo, claims.nonce) in self._nonces:
                raise Refusal(Reason.NONCE_REPLAYED, "the silo already used this nonce; the claims are a replay")
            self._nonces.add((silo, claims.nonce))
        return claims

    def _read_words(
        self, claims: StatisticsClaims, chunks: Iterable[tuple[int, str, npt.NDArray[np.generic]]]
    ) -> npt.NDArray[np.uint32]:
        """The masked words, in order, exactly as long as the plan says and with the signed digest."""
        assert self._plan is not None
        length = self._plan.words(claims.step)
        if claims.vector_length != length:
            raise Refusal(
                Reason.SHAPE_MISMATCH,
                f"the claims name {claims.vector_length} words; the {claims.step} pass has {length}",
            )
        words = np.zeros(length, dtype=np.uint32)
        filled = 0
        try:
            for offset, dtype, values in chunks:
                if dtype != "uint32" or offset != filled or filled + values.size > length:
                    raise Refusal(
                        Reason.PAYLOAD_INVALID, "masked totals come as uint32 chunks in order, no longer than claimed"
                    )
                words[filled : filled + values.size] = values
                filled += values.size
        except (MessageError, StreamError) as error:
            raise Refusal(Reason.PAYLOAD_INVALID, f"the masked totals do not parse: {error}") from error
        if filled != length:
            raise Refusal(Reason.PAYLOAD_INVALID, f"the masked totals end after {filled} of {length} words")
        if masked_words_digest(words) != claims.payload_digest:
            raise Refusal(Reason.PAYLOAD_DIGEST_MISMATCH, "the masked totals' digest differs from the signed one")
        return words

    def _policy_input(self, silo: str, claims: StatisticsClaims, pass_number: int) -> UpdatePolicyInput:
        """The policy's view of one statistics upload (docs/policy-input.md, ``job.phase``).

        Raises:
            Refusal: the hub's ledger charged the silo's statistics of this run for another release.
        """
        assert self._plan is not None
        epsilon = self._plan.epsilon
        with self._cond:
            seen = sum(1 for name, _ in self._nonces if name == silo)
        budget = self._charges.budget(self._plan, silo) if self._charges is not None else None
        return UpdatePolicyInput(
            job=JobFacts.of(self.job, pass_number).model_copy(update={"phase": "statistics"}),
            silo=SiloFacts(name=silo, enrolled=True, max_epsilon=self._ceilings.get(silo)),
            update=UpdateFacts(
                signature_valid=True,
                round=pass_number,
                nonce=claims.nonce,
                # Masked totals have no norm the hub could check, and a silo's count is never sent:
                # it asserts only the job's minCount, below which it would have declined.
                l2_norm=0.0,
                num_samples=self._plan.min_count,
                epsilon_round=epsilon,
                payload_digest=claims.payload_digest or "",
            ),
            # Both passes are one statistics release, charged at round 0 before the first round: the
            # hub's ledger says what it costs (lifetime included). Without a hub ledger the silo has spent
            # nothing in this job before it. Without DP nothing is accounted, and a job with an epsilon
            # ceiling denies exact totals.
            ledger=LedgerFacts.of(nonce_seen=False, seen_nonces=seen, budget=budget)
            if budget is not None
            else LedgerFacts(
                nonce_seen=False,
                seen_nonces=seen,
                epsilon_spent=None if epsilon is None else 0.0,
                epsilon_if_accepted=epsilon,
            ),
        )

    # ----- the barriers ------------------------------------------------------------------------

    def _relay(self, silo: str, pass_number: int, name: str, body: bytes) -> bytes:
        with self._cond:
            step = self._open_step(pass_number, name)
            step.post(silo, body)
            self._cond.notify_all()
            self._await(step)
            reply = self._replies.get((pass_number, name), {}).get(silo)
            if reply is None:
                raise PhaseClosed(self._failure or f"the {name} step of statistics pass {pass_number} left {silo} out")
            return reply

    def _open_step(self, pass_number: int, name: str) -> Phase[Any]:
        step = self._steps.get((pass_number, name))
        if step is None:
            raise PhaseClosed(self._failure or f"the {name} step of statistics pass {pass_number} is not open")
        return step

    def _post_input(self, silo: str, pass_number: int, words: npt.NDArray[np.uint32] | None, reason: str) -> None:
        """A refused upload still counts as the silo's post, so the step need not wait for its deadline."""
        with self._cond:
            step = self._steps.get((pass_number, "submit"))
            if step is not None and not step.closed and silo in step.expected and silo not in step.posted:
                step.post(silo, words)
                if self._hub is not None:
                    self._hub.excluded[silo] = reason
                self._cond.notify_all()

    def _await(self, step: Phase[Any]) -> None:
        """Wait (holding the condition) until ``step`` closes, closing it when complete or past its deadline."""
        while not step.closed:
            if step.complete() or time.monotonic() >= step.deadline:
                self._close(step)
                break
            self._cond.wait(min(max(step.deadline - time.monotonic(), 0.0), 1.0))

    def _close_expired(self) -> None:
        for step in [self._join, *self._steps.values()]:
            if not step.closed and (step.complete() or time.monotonic() >= step.deadline):
                self._close(step)

    def _close(self, step: Phase[Any]) -> None:
        step.closed = True
        closers: dict[str, Callable[[Phase[Any]], None]] = {
            "join": self._close_join,
            "advertise": self._close_advertise,
            "share": self._close_share,
            "submit": self._close_submit,
            "unmask": self._close_unmask,
        }
        if not self._failure:
            try:
                closers[step.name](step)
            except (SecAggAbort, SecAggError) as error:
                self._fail(f"the statistics cannot be aggregated securely ({error})")
            except ValueError as error:
                # The records' widths disagree (DataError), or the released statistics cannot fit the
                # preprocessing (a statistic it needs was suppressed): the message names what and the fix.
                self._fail(str(error))
        self._cond.notify_all()

    def _open(self, pass_number: int, name: str, expected: Iterable[str]) -> None:
        self._steps[(pass_number, name)] = Phase(name, frozenset(expected), time.monotonic() + self._step_seconds)

    def _close_join(self, step: Phase[StatisticsClaims]) -> None:
        excluded = {silo: claims.declined for silo, claims in step.posted.items() if claims.declined is not None}
        excluded.update({silo: "absent: did not join the statistics phase in time" for silo in step.missing()})
        taking_part = sorted(set(step.posted) - set(excluded))
        widths = {step.posted[silo].features or 0 for silo in taking_part}
        if len(widths) > 1:
            raise DataError(
                "the silos' records have different widths "
                f"{ {silo: step.posted[silo].features for silo in taking_part} }; they cannot share statistics"
            )
        width = widths.pop() if widths else 1
        self._plan = StatisticsPlan.for_job(self.run, self.job.spec, width)
        self._hub = StatisticsHub(self._plan, self._keys)
        self._hub.excluded.update(excluded)
        self._start_pass(1, taking_part)

    def _start_pass(self, pass_number: int, participants: Iterable[str]) -> None:
        assert self._hub is not None
        self._hub.open(PASSES[pass_number - 1])
        self._open(pass_number, "advertise", participants)
        self._step = StatisticsStep(
            pass_number=pass_number,
            participants=tuple(sorted(participants)),
            ranges=tuple((column, low, high) for column, (low, high) in sorted(self._ranges.items())),
        )

    def _pass_of(self, step: Phase[Any]) -> int:
        return next(number for (number, _), open_step in self._steps.items() if open_step is step)

    def _close_advertise(self, step: Phase[bytes]) -> None:
        assert self._hub is not None and self._hub.server is not None
        pass_number = self._pass_of(step)
        replies = self._hub.server.advertise(step.posted)
        self._replies[(pass_number, "advertise")] = replies
        self._open(pass_number, "share", replies)

    def _close_share(self, step: Phase[bytes]) -> None:
        assert self._hub is not None and self._hub.server is not None
        pass_number = self._pass_of(step)
        replies = self._hub.server.share_keys(step.posted)
        self._replies[(pass_number, "share")] = replies
        self._open(pass_number, "submit", replies)

    def _close_submit(self, step: Phase[npt.NDArray[np.uint32] | None]) -> None:
        assert self._hub is not None and self._hub.server is not None
        pass_number = self._pass_of(step)
        for silo in sorted(step.expected):
            words = step.posted.get(silo)
            if words is not None:
                self._hub.receive(silo, words)
            else:
                reason = self._hub.excluded.get(silo, "absent: sent no masked totals in time")
                self._hub.excluded.setdefault(silo, reason)
                self._hub.server.exclude(silo, reason)
        self._unmask_body[pass_number] = self._hub.server.unmask_request()
        self._open(pass_number, "unmask", self._hub.counted)

    def _close_unmask(self, step: Phase[bytes]) -> None:
        assert self._hub is not None and self._hub.server is not None and self._plan is not None
        pass_number = self._pass_of(step)
        self._hub.server.unmask(step.posted)
        total = self._hub.total()
        if pass_number == 1:
            self._moments = total
            self._ranges = self._hub.ranges(total)
            self._start_pass(2, self._hub.counted)
            return
        assert self._moments is not None
        statistics = self._hub.publish(self._moments, total, self._ranges)
        preprocessing = self.job.spec.data.preprocessing
        fitted = (
            fit_preprocessing(statistics, preprocessing)
            if preprocessing is not None and preprocessing.federated
            else None
        )
        spent = self._charges.released(self._plan, statistics.silos) if self._charges is not None else {}
        self._release = StatisticsRelease(statistics, fitted, self._hub.view, spent)
        statistics_digest = sha256_digest(statistics.canonical_bytes())
        preprocessing_digest = fitted.digest() if fitted is not None else ""
        self._gate.record_operation(
            job=self.job.metadata.name,
            operation=STATISTICS_OPERATION,
            round_number=0,
            reason="released",
            details={
                "statistics_digest": statistics_digest,
                "preprocessing_digest": preprocessing_digest or None,
                "silos": list(statistics.silos),
                "excluded": {e.silo: e.reason for e in statistics.excluded},
                # What the hub's ledger charged each counted silo for this release (its epsilon in the run).
                "epsilon_spent": dict(spent) or None,
            },
        )
        self._step = StatisticsStep(
            pass_number=0,
            participants=statistics.silos,
            statistics_digest=statistics_digest,
            preprocessing_digest=preprocessing_digest,
            preprocessing_json=fitted.canonical_bytes().decode() if fitted is not None else "",
        )

    def _fail(self, message: str) -> None:
        excluded = dict(self._hub.excluded) if self._hub is not None else {}
        excluded.update(
            {silo: claims.declined for silo, claims in self._join.posted.items() if claims.declined is not None}
        )
        left_out = "; ".join(f"{silo}: {reason}" for silo, reason in sorted(excluded.items())) or "none"
        self._failure = f"{message}; silos left out: {left_out}"
        for step in [self._join, *self._steps.values()]:
            step.closed = True
        self._step = StatisticsStep(pass_number=0, failure=self._failure)
        self._gate.record_operation(
            job=self.job.metadata.name,
            operation=STATISTICS_OPERATION,
            round_number=0,
            reason="failed",
            details={"failure": self._failure},
        )
        self._cond.notify_all()


class StatisticsService(rpc.AggregatorServicer):
    """The statistics RPCs of the aggregator's service, mapped to one ``StatisticsPhase``.

    The other RPCs answer UNIMPLEMENTED (the generated base): the rounds are served once the
    phase is over, by ``AggregatorService`` on the same address.
    """

    def __init__(self, phase: StatisticsPhase, trust: SiloTrust | None = None) -> None:
        self._phase = phase
        spec = phase.job.spec
        self._caller = Callers(phase.enrolled, RateLimits(spec.rate_limits, spec.silos, self._limited), trust)

    def Join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinReply:
        """Training is not served yet: a sidecar that is already past the phase retries until it is."""
        context.abort(grpc.StatusCode.UNAVAILABLE, "the statistics phase is being served; training opens when it ends")

    def Leave(self, request: pb.SignedMetadata, context: grpc.ServicerContext) -> pb.Decision:
        """A leave during the phase is not taken: the silo counts as gone at the step's deadline (docs/statistics.md)."""
        silo = self._caller(context, "")
        context.abort(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"{silo}: a leave during the statistics phase is not taken; the phase counts the silo as gone at the "
            "step's deadline (roundTimeoutSeconds)",
        )

    def _limited(self, silo: str, refusal: Refusal) -> None:
        """A call over the silo's rate limits: recorded in the audit log, as the rounds' service does."""
        self._phase.refuse(silo, refusal)

    def JoinStatistics(self, request: pb.SignedMetadata, context: grpc.ServicerContext) -> pb.StatisticsStep:
        silo = self._caller(context, "")
        try:
            step = self._phase.join(silo, request.metadata_json, request.signature)
        except Refusal as refusal:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal.text)
        except PhaseClosed as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        return statistics_step_to_proto(step)

    def _relay(
        self,
        relay: Callable[[str, int, bytes], bytes],
        request: pb.SecAggEnvelope,
        context: grpc.ServicerContext,
    ) -> pb.SecAggEnvelope:
        silo = self._caller(context, request.ref.silo)
        try:
            reply = relay(silo, request.ref.round, request.body)
        except PhaseClosed as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        return pb.SecAggEnvelope(ref=request.ref, body=reply)

    def StatisticsAdvertise(self, request: pb.SecAggEnvelope, context: grpc.ServicerContext) -> pb.SecAggEnvelope:
        return self._relay(self._phase.advertise, request, context)

    def StatisticsShare(self, request: pb.SecAggEnvelope, context: grpc.ServicerContext) -> pb.SecAggEnvelope:
        return self._relay(self._phase.share, request, context)

    def SubmitStatistics(
        self, request_iterator: Iterator[pb.UpdateChunk], context: grpc.ServicerContext
    ) -> pb.Decision:
        silo = self._caller(context, "", upload=True)
        try:
            claims_json, signature = update_metadata_from_proto(next(request_iterator))
        except (StopIteration, MessageError) as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"statistics stream: {error or 'empty'}")
        chunks = (update_chunk_from_proto(message) for message in request_iterator)
        return verdict_to_proto(self._phase.submit(silo, claims_json, signature, chunks))

    def GetStatisticsUnmaskRequest(self, request: pb.RoundRef, context: grpc.ServicerContext) -> pb.SecAggEnvelope:
        silo = self._caller(context, request.silo)
        try:
            body = self._phase.unmask_request(silo, request.round)
        except PhaseClosed as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        return pb.SecAggEnvelope(ref=request, body=body)

    def StatisticsUnmask(self, request: pb.SecAggEnvelope, context: grpc.ServicerContext) -> pb.StatisticsStep:
        silo = self._caller(context, request.ref.silo)
        try:
            step = self._phase.unmask(silo, request.ref.round, request.body)
        except PhaseClosed as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        return statistics_step_to_proto(step)
