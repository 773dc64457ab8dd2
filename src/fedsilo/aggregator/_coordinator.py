"""The aggregator's job state machine: rounds, their steps, admission of updates, results.

``JobCoordinator.run`` drives the rounds in the caller's thread; gRPC handler threads call
the other public methods, which block on one condition variable until the step they take
part in closes. Every update passes, in this order: signature verification against the
registered key, replay and round checks, the streamed payload and its digest, the policy
gate (which records its decision), and only then the aggregate. There is no other path
into ``Aggregation.admit``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from fedsilo.api import AggregationMode, FederatedJob
from fedsilo.audit import SignedHead
from fedsilo.identity import SignatureError, VerifyKey, sha256_digest
from fedsilo.policy import Decision, UpdatePolicyInput
from fedsilo.protocol import (
    EvaluationReport,
    MessageError,
    PolicyVerdict,
    RoundPlan,
    StreamError,
    TensorLayout,
    UpdateMetadata,
    Weights,
    encode_weights,
)
from fedsilo.registry import Lineage, ModelRegistry
from fedsilo.secagg import SecAggAbort, SecAggConfig, choose_fractional_bits

from ._aggregation import Aggregation, PlainAggregation
from ._masked import MaskedAggregation
from ._metrics import BYTES, DECISIONS, EPSILON, ROUNDS
from ._phases import Phase, PhaseClosed, wait_until

log = logging.getLogger("fedsilo.aggregator")

# Payloads buffered at once before they are admitted or dropped.
UPLOAD_SLOTS = 2
# Least time silos get to join before the first round.
JOIN_TIMEOUT_SECONDS = 120.0


class UpdateGate(Protocol):
    """The policy decision on one update; implementations record every decision they make."""

    def check(self, policy_input: UpdatePolicyInput) -> Decision:
        """Allow or deny the update described by ``policy_input``."""
        ...

    def checkpoint(self) -> SignedHead:
        """Sign the audit log's head: published with the round (lineage, status) outside the log."""
        ...


class ServerStrategy(Protocol):
    """The server side of a strategy (see ``fedsilo.strategies``)."""

    def configure_round(self, round_number: int) -> Any:
        """The fit configuration silos train with in ``round_number``."""
        ...

    def aggregate(self, global_weights: Weights, mean_update: Weights) -> Weights:
        """The next global model from the sample-weighted mean update."""
        ...


class PrivacyBook(Protocol):
    """Answers the ledger questions the policy input needs (``LedgerBook`` over ``fedsilo.privacy.ledger``)."""

    def problem(self, silo: str, metadata: UpdateMetadata) -> str | None:
        """Why the update's signed privacy claims cannot be accepted, as a policy reason; None if they can."""
        ...

    def policy_view(self, silo: str, metadata: UpdateMetadata) -> dict[str, Any]:
        """``epsilon_spent`` and ``epsilon_if_accepted`` of ``silo`` for this update."""
        ...

    def commit(self, silo: str, metadata: UpdateMetadata) -> float | None:
        """Charge an admitted update; the silo's epsilon in this job after it (None without DP)."""
        ...

    def round_closed(self, round_number: int, silos: tuple[str, ...]) -> None:
        """The round's aggregate took the updates of ``silos``."""
        ...

    def signed_head(self) -> SignedHead | None:
        """The ledger's newest signed head, published with the round outside the ledger."""
        ...


@dataclass
class SiloRoundStats:
    """What one silo did in one round."""

    bytes_up: int = 0
    bytes_down: int = 0
    accepted: bool = False
    reasons: tuple[str, ...] = ()
    epsilon_round: float | None = None
    # The silo's epsilon in this job once this round's update is charged.
    epsilon_spent: float | None = None


@dataclass
class RoundSummary:
    """The outcome of one round, for progress, tables, status and the registry."""

    round: int
    participants: tuple[str, ...]
    accepted: tuple[str, ...]
    dropped: tuple[str, ...]
    denied: dict[str, tuple[str, ...]]
    seconds: float
    model_digest: str
    silos: dict[str, SiloRoundStats] = field(default_factory=dict)
    # Federated evaluation of this round's model (filled in when the next round reports).
    loss: float | None = None
    accuracy: float | None = None
    # The audit log's and the hub ledger's signed heads as the round closed, to publish outside them.
    audit_head: SignedHead | None = None
    ledger_head: SignedHead | None = None


class RoundObserver(Protocol):
    """Told about progress: the CLI's progress bar, Kubernetes status, metrics."""

    def round_started(self, round_number: int, participants: tuple[str, ...]) -> None:
        """A round opened."""
        ...

    def update_decided(self, round_number: int, silo: str, verdict: PolicyVerdict) -> None:
        """An update was admitted or denied."""
        ...

    def round_finished(self, summary: RoundSummary) -> None:
        """A round closed and its model is stored (metrics of the previous round may update)."""
        ...


class JobFailed(RuntimeError):
    """The job cannot go on (quorum lost, too few survivors to unmask)."""


@dataclass
class _Round:
    plan: RoundPlan
    aggregation: Aggregation | None
    steps: dict[str, Phase[bytes]]
    inputs: Phase[PolicyVerdict]
    unmask: Phase[bytes] | None
    evaluations: dict[str, EvaluationReport] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    denied: dict[str, tuple[str, ...]] = field(default_factory=dict)
    stats: dict[str, SiloRoundStats] = field(default_factory=dict)
    replies: dict[str, dict[str, bytes]] = field(default_factory=dict)
    unmask_body: bytes = b""
    started: float = field(default_factory=time.monotonic)


def _fit_config_document(config: Any) -> dict[str, Any]:
    if is_dataclass(config) and not isinstance(config, type):
        return asdict(config)
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"strategy returned {type(config).__name__}, expected a dataclass or mapping")


class JobCoordinator:
    """Runs one FederatedJob's rounds on the hub."""

    def __init__(
        self,
        job: FederatedJob,
        silo_keys: Mapping[str, VerifyKey],
        initial_weights: Weights,
        strategy: ServerStrategy,
        registry: ModelRegistry,
        gate: UpdateGate,
        *,
        observer: RoundObserver | None = None,
        privacy: PrivacyBook | None = None,
        silo_ceilings: Mapping[str, float | None] | None = None,
        join_timeout: float | None = None,
    ) -> None:
        self.job = job
        self.spec = job.spec
        self._keys = dict(silo_keys)
        self._layout = TensorLayout.of(initial_weights)
        self._weights = initial_weights
        self._model_blob = encode_weights(initial_weights)
        self._model_digest = sha256_digest(self._model_blob)
        self._strategy = strategy
        self._registry = registry
        self._gate = gate
        self._observer = observer
        self._privacy = privacy
        # Uploads buffered at once (see BufferedSink): bounds hub memory whatever the silo count.
        self._upload_slots = threading.BoundedSemaphore(UPLOAD_SLOTS)
        self._silo_ceilings = dict(silo_ceilings or {})
        # Silos need time to start (a trainer loads its data and model before it greets).
        self._join_timeout = join_timeout or max(JOIN_TIMEOUT_SECONDS, float(self.spec.round_timeout_seconds))
        self._cond = threading.Condition()
        self._joined: dict[str, int] = {}
        self._gone: set[str] = set()
        self._waiting: dict[str, int] = {}
        self._nonces: dict[str, set[str]] = {name: set() for name in self.spec.silos}
        self._round: _Round | None = None
        self._final_plan: RoundPlan | None = None
        self.summaries: list[RoundSummary] = []

    # ----- calls from silos (gRPC handler threads) ---------------------------------------

    def enrolled(self, silo: str) -> bool:
        """Whether ``silo`` is registered for this job."""
        return silo in self._keys

    def join(self, silo: str, num_samples: int) -> None:
        """Register a silo's presence and data size (used to size the fixed-point range)."""
        if num_samples <= 0:
            raise ValueError("num_samples must be positive")
        with self._cond:
            self._joined[silo] = num_samples
            self._gone.discard(silo)
            self._cond.notify_all()
        log.info("silo %s joined with %d records", silo, num_samples)

    def wait_round(self, silo: str, after_round: int, timeout: float) -> RoundPlan | None:
        """The plan of the first round after ``after_round``; None if none opened in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiting[silo] = after_round
            self._gone.discard(silo)
            self._cond.notify_all()

            def ready() -> bool:
                current = self._round
                return self._final_plan is not None or (
                    current is not None and current.plan.round > after_round and silo in current.plan.participants
                )

            if not wait_until(self._cond, ready, deadline):
                return None
            self._waiting.pop(silo, None)
            if self._final_plan is not None:
                return self._final_plan
            assert self._round is not None
            return self._round.plan

    def model_blob(self, silo: str, round_number: int) -> bytes:
        """The global model a silo trains from in ``round_number`` (safetensors bytes)."""
        with self._cond:
            current = self._require_round(silo, round_number)
            self._stats(current, silo).bytes_down += len(self._model_blob)
            return self._model_blob

    def setup_step(self, step: str, silo: str, round_number: int, body: bytes) -> bytes:
        """Post a secure-aggregation setup message; block until the step closes; the reply."""
        with self._cond:
            current = self._require_round(silo, round_number)
            if step not in current.steps:
                raise PhaseClosed(f"this round has no {step} step ({current.plan.aggregation} mode)")
            phase = current.steps[step]
            phase.post(silo, body)
            self._stats(current, silo).bytes_up += len(body)
            self._cond.notify_all()
            wait_until(self._cond, lambda: step in current.replies or current.plan.failure != "", phase.deadline + 5)
            reply = current.replies.get(step, {}).get(silo)
            if reply is None:
                raise PhaseClosed(f"{silo} is no longer part of round {round_number}")
            self._stats(current, silo).bytes_down += len(reply)
            return reply

    def submit_update(
        self,
        silo: str,
        metadata_json: bytes,
        signature: bytes,
        chunks: Iterable[tuple[int, str, npt.NDArray[np.generic]]],
    ) -> PolicyVerdict:
        """Verify, stream, gate and (if allowed) admit one update. Never raises for bad input."""
        claims, signature_valid, problem = self._verify(silo, metadata_json, signature, UpdateMetadata)
        with self._cond:
            current = self._round
        if claims is None or current is None or current.aggregation is None:
            verdict = PolicyVerdict(False, (problem or "no round is accepting updates",))
            log.warning("update from %s refused before the gate: %s", silo, verdict.reasons[0])
            return verdict
        assert isinstance(claims, UpdateMetadata)
        stats = self._stats(current, silo)
        stats.bytes_up += len(metadata_json) + len(signature)
        nonce_seen = claims.nonce in self._nonces.setdefault(silo, set())
        # Nothing of an update that cannot be attributed, or that is replayed or stale, is read.
        readable = signature_valid and not nonce_seen and claims.round == current.plan.round
        transport = problem if problem and signature_valid is False and problem.startswith("identity") else None
        if readable:
            transport = self._transport_check(current, silo, claims)
        if signature_valid:
            self._nonces[silo].add(claims.nonce)
        # An update that is read takes an upload slot until its buffered payload is admitted or dropped.
        with self._upload_slots if readable and transport is None else contextlib.nullcontext():
            payload_digest = ""
            if readable and transport is None:
                sink = current.aggregation.open_update(silo)
                try:
                    for offset, dtype, values in chunks:
                        stats.bytes_up += values.nbytes
                        sink.add(offset, dtype, values)
                    payload_digest = sink.finish()
                except StreamError as error:
                    transport = f"payload_invalid: {error}"
                else:
                    if payload_digest != claims.payload_digest:
                        transport = "payload_digest_mismatch: the payload differs from what the silo signed"
            document = self._policy_input(current, silo, claims, signature_valid, nonce_seen, transport)
            decision = self._gate.check(UpdatePolicyInput.from_document(document))
            verdict = PolicyVerdict(decision.allow, decision.reasons, decision.policy_revision)
            with self._cond:
                try:
                    current.inputs.post(silo, verdict)
                except PhaseClosed as error:
                    # Late, repeated or not a participant: this stream never touches the round.
                    return PolicyVerdict(False, (f"round_closed: {error}", *verdict.reasons), verdict.policy_revision)
                if verdict.accepted:
                    current.aggregation.admit(silo)
                    current.digests[silo] = payload_digest
                    stats.epsilon_round = claims.epsilon_round
                    if self._privacy is not None:
                        stats.epsilon_spent = self._privacy.commit(silo, claims)
                else:
                    current.aggregation.exclude(silo, "; ".join(verdict.reasons))
                    current.denied[silo] = verdict.reasons
                stats.accepted = verdict.accepted
                stats.reasons = verdict.reasons
                DECISIONS.labels(self.job.metadata.name, "allow" if verdict.accepted else "deny").inc()
                self._cond.notify_all()
        if self._observer is not None:
            self._observer.update_decided(current.plan.round, silo, verdict)
        return verdict

    def unmask_request(self, silo: str, round_number: int) -> bytes:
        """Block until the input step closes; what ``silo`` must reveal."""
        with self._cond:
            current = self._require_round(silo, round_number)
            if current.aggregation is None or not current.aggregation.setup_steps:
                raise PhaseClosed("this round has no unmasking step")
            wait_until(
                self._cond,
                lambda: current.unmask_body != b"" or current.plan.failure != "",
                current.inputs.deadline + 5,
            )
            if current.unmask is None or silo not in current.unmask.expected:
                raise PhaseClosed(f"{silo} is not a survivor of round {round_number}")
            self._stats(current, silo).bytes_down += len(current.unmask_body)
            return current.unmask_body

    def unmask(self, silo: str, round_number: int, body: bytes) -> PolicyVerdict:
        """A survivor's revealed shares."""
        with self._cond:
            current = self._require_round(silo, round_number)
            if current.unmask is None:
                raise PhaseClosed("this round has no unmasking step")
            current.unmask.post(silo, body)
            self._stats(current, silo).bytes_up += len(body)
            self._cond.notify_all()
        return PolicyVerdict(True)

    def report_evaluation(self, silo: str, metadata_json: bytes, signature: bytes) -> PolicyVerdict:
        """A silo's signed evaluation of the global model it received this round."""
        report, signature_valid, problem = self._verify(silo, metadata_json, signature, EvaluationReport)
        if report is None or not signature_valid:
            return PolicyVerdict(False, (problem or "signature_invalid",))
        assert isinstance(report, EvaluationReport)
        with self._cond:
            current = self._round
            if current is None or report.round != current.plan.round or report.job != self.job.metadata.name:
                return PolicyVerdict(False, ("stale_round: evaluation is not for the current round",))
            if report.nonce in self._nonces.setdefault(silo, set()):
                return PolicyVerdict(False, ("nonce_replayed: this evaluation was already received",))
            self._nonces[silo].add(report.nonce)
            current.evaluations[silo] = report
            self._stats(current, silo).bytes_up += len(metadata_json) + len(signature)
            self._cond.notify_all()
        return PolicyVerdict(True)

    # ----- the round loop ---------------------------------------------------------------

    def run(self) -> list[RoundSummary]:
        """Run every round and the closing evaluation; raise ``JobFailed`` if quorum is lost."""
        try:
            self._await_joins()
            for round_number in range(1, self.spec.rounds + 1):
                self._run_round(round_number)
            self._run_final_evaluation(self.spec.rounds + 1)
        except JobFailed as error:
            self._finish(str(error))
            raise
        self._finish("")
        return self.summaries

    def _await_joins(self) -> None:
        deadline = time.monotonic() + self._join_timeout
        with self._cond:
            everyone = wait_until(self._cond, lambda: len(self._joined) == len(self.spec.silos), deadline)
            if not everyone and len(self._joined) < self.spec.min_silos:
                raise JobFailed(
                    f"only {len(self._joined)} of {len(self.spec.silos)} silos joined within "
                    f"{self._join_timeout:.0f}s; minSilos is {self.spec.min_silos}"
                )

    def _participants(self, after_round: int, deadline: float) -> tuple[str, ...]:
        """Silos ready for the next round: everyone still live, waiting up to ``deadline``."""

        def live() -> list[str]:
            return [s for s in self.spec.silos if s in self._joined and s not in self._gone]

        wait_until(
            self._cond,
            lambda: all(self._waiting.get(s) == after_round for s in live()),
            deadline,
        )
        ready = tuple(s for s in live() if self._waiting.get(s) == after_round)
        for silo in live():
            if silo not in ready:
                self._gone.add(silo)
        return ready

    def _open(self, round_number: int, evaluate_only: bool) -> _Round:
        deadline = time.monotonic() + self.spec.round_timeout_seconds
        participants = self._participants(round_number - 1, deadline)
        if len(participants) < self.spec.min_silos:
            raise JobFailed(
                f"round {round_number}: quorum lost: only {len(participants)} silos are live "
                f"({', '.join(participants) or 'none'}); minSilos is {self.spec.min_silos}"
            )
        masked = self.spec.aggregation.mode is AggregationMode.MASKED
        fit_config = {} if evaluate_only else _fit_config_document(self._strategy.configure_round(round_number))
        plan = RoundPlan(
            round=round_number,
            evaluate_only=evaluate_only,
            fit_config=fit_config,
            aggregation=self.spec.aggregation.mode.value,
            fractional_bits=self._fractional_bits() if masked else 0,
            threshold=self.spec.secagg_threshold() if masked else 0,
            participants=participants,
            model_digest=self._model_digest,
            vector_length=self._layout.size + 1,
        )
        aggregation: Aggregation | None = None
        if not evaluate_only:
            if masked:
                config = SecAggConfig(
                    job=self.job.metadata.name,
                    round=round_number,
                    silos=tuple(self.spec.silos),
                    threshold=plan.threshold,
                    vector_length=plan.vector_length,
                    fractional_bits=plan.fractional_bits,
                    clip_range=self.spec.aggregation.clip_range,
                )
                aggregation = MaskedAggregation(config, {s: self._keys[s] for s in participants})
            else:
                aggregation = PlainAggregation(plan.vector_length)
        expected = frozenset(participants)
        steps = {
            name: Phase[bytes](name, expected, deadline) for name in (aggregation.setup_steps if aggregation else ())
        }
        current = _Round(
            plan=plan,
            aggregation=aggregation,
            steps=steps,
            inputs=Phase[PolicyVerdict]("input", expected, deadline),
            unmask=None,
        )
        self._round = current
        self._cond.notify_all()
        return current

    def _run_round(self, round_number: int) -> None:
        with self._cond:
            current = self._open(round_number, evaluate_only=False)
        if self._observer is not None:
            self._observer.round_started(round_number, current.plan.participants)
        log.info("round %d opened with %s", round_number, ", ".join(current.plan.participants))
        aggregation = current.aggregation
        assert aggregation is not None
        with self._cond:
            alive = set(current.plan.participants)
            for index, (name, phase) in enumerate(current.steps.items()):
                if index:
                    self._restart(phase, alive)
                wait_until(self._cond, phase.complete, phase.deadline)
                phase.closed = True
                alive &= set(phase.posted)
                self._mark_gone(phase.missing(), round_number, name)
                self._require(len(alive), round_number, f"the {name} step")
                try:
                    replies = aggregation.setup_step(name, {s: phase.posted[s] for s in alive})
                except SecAggAbort as error:
                    raise JobFailed(f"round {round_number}: {error}") from error
                for silo in alive - replies.keys():
                    log.warning("round %d: %s left out at the %s step", round_number, silo, name)
                alive = set(replies)
                current.replies[name] = replies
                self._cond.notify_all()
            if current.steps:
                self._restart(current.inputs, alive)
            wait_until(self._cond, current.inputs.complete, current.inputs.deadline)
            current.inputs.closed = True
            missing = current.inputs.missing()
            self._mark_gone(missing, round_number, "input")
            for silo in missing:
                aggregation.exclude(silo, "dropped before sending its update")
            accepted = tuple(s for s, v in current.inputs.posted.items() if v.accepted)
            if len(accepted) < self.spec.min_silos:
                raise JobFailed(
                    f"round {round_number}: quorum lost: {len(accepted)} updates accepted "
                    f"({', '.join(accepted) or 'none'}); minSilos is {self.spec.min_silos}"
                )
            if aggregation.setup_steps:
                current.unmask = Phase[bytes](
                    "unmask", frozenset(accepted), time.monotonic() + self.spec.round_timeout_seconds
                )
                current.unmask_body = aggregation.unmask_request(frozenset(accepted))
                self._cond.notify_all()
                wait_until(self._cond, current.unmask.complete, current.unmask.deadline)
                current.unmask.closed = True
                self._mark_gone(current.unmask.missing(), round_number, "unmask")
                try:
                    aggregation.unmask(dict(current.unmask.posted))
                except Exception as error:
                    raise JobFailed(f"round {round_number}: unmasking failed: {error}") from error
        total, weight = aggregation.result()
        if weight <= 0 or not math.isfinite(weight):
            raise JobFailed(f"round {round_number}: aggregate weight is {weight}")
        mean = self._layout.unflatten((total / weight).astype(np.float32))
        new_weights = self._strategy.aggregate(self._weights, mean)
        if self._privacy is not None:
            self._privacy.round_closed(round_number, accepted)
        with self._cond:
            self._record(current, new_weights, accepted)

    def _record(self, current: _Round, new_weights: Weights, accepted: tuple[str, ...]) -> None:
        parent = self._model_digest
        self._weights = new_weights
        self._model_blob = encode_weights(new_weights)
        self._model_digest = sha256_digest(self._model_blob)
        self._apply_evaluations(current)
        plan = current.plan
        audit_head = self._gate.checkpoint()
        ledger_head = self._privacy.signed_head() if self._privacy is not None else None
        summary = RoundSummary(
            round=plan.round,
            participants=plan.participants,
            accepted=accepted,
            dropped=tuple(s for s in plan.participants if s not in current.inputs.posted),
            denied=dict(current.denied),
            seconds=time.monotonic() - current.started,
            model_digest=self._model_digest,
            silos=dict(current.stats),
            audit_head=audit_head,
            ledger_head=ledger_head,
        )
        self.summaries.append(summary)
        ROUNDS.labels(self.job.metadata.name, "completed").inc()
        for silo, silo_stats in summary.silos.items():
            BYTES.labels(self.job.metadata.name, silo, "up").inc(silo_stats.bytes_up)
            BYTES.labels(self.job.metadata.name, silo, "down").inc(silo_stats.bytes_down)
            if silo_stats.epsilon_spent is not None:
                EPSILON.labels(self.job.metadata.name, silo).set(silo_stats.epsilon_spent)
        self._registry.save(
            new_weights,
            Lineage(
                job=self.job.metadata.name,
                round=plan.round,
                model_digest=self._model_digest,
                parent_digest=parent,
                participants=accepted,
                update_digests={s: current.digests[s] for s in accepted},
                metrics={"denied": {k: list(v) for k, v in current.denied.items()}},
                strategy=self.spec.strategy.name.value,
                aggregation=plan.aggregation,
                evidence={
                    name: head.to_json()
                    for name, head in (("audit_head", audit_head), ("ledger_head", ledger_head))
                    if head is not None
                },
            ),
        )
        if self._observer is not None:
            self._observer.round_finished(summary)

    def _run_final_evaluation(self, round_number: int) -> None:
        with self._cond:
            current = self._open(round_number, evaluate_only=True)
            participants = set(current.plan.participants)
            wait_until(self._cond, lambda: participants <= current.evaluations.keys(), current.inputs.deadline)
            self._apply_evaluations(current)
        if self._observer is not None and self.summaries:
            self._observer.round_finished(self.summaries[-1])

    def _apply_evaluations(self, current: _Round) -> None:
        """Round r's silos evaluated the model of round r-1: attach those metrics to it."""
        if not self.summaries or not current.evaluations:
            return
        reports = list(current.evaluations.values())
        count = sum(r.num_samples for r in reports)
        target = self.summaries[-1]
        target.loss = sum(r.loss * r.num_samples for r in reports) / count
        target.accuracy = sum(r.accuracy * r.num_samples for r in reports) / count

    def _finish(self, failure: str) -> None:
        if failure:
            ROUNDS.labels(self.job.metadata.name, "failed").inc()
        with self._cond:
            self._final_plan = RoundPlan(round=0, finished=True, failure=failure)
            if self._round is not None:
                self._round.plan = RoundPlan(**{**asdict(self._round.plan), "failure": failure or "finished"})
            self._cond.notify_all()

    # ----- helpers ------------------------------------------------------------------------

    def _restart(self, phase: Phase[Any], alive: set[str]) -> None:
        """Open the next step to the silos still alive, with a full timeout of its own."""
        phase.expected = frozenset(alive)
        phase.deadline = time.monotonic() + self.spec.round_timeout_seconds
        self._cond.notify_all()

    def _require(self, alive: int, round_number: int, where: str) -> None:
        threshold = self.spec.secagg_threshold()
        needed = max(threshold, self.spec.min_silos)
        if alive < needed:
            raise JobFailed(
                f"round {round_number}: quorum lost after {where}: {alive} silos left; minSilos is "
                f"{self.spec.min_silos} and the secure-aggregation threshold is {threshold}"
            )

    def _mark_gone(self, silos: Iterable[str], round_number: int, step: str) -> None:
        for silo in silos:
            log.warning("round %d: %s dropped during the %s step", round_number, silo, step)
            self._gone.add(silo)

    def _require_round(self, silo: str, round_number: int) -> _Round:
        current = self._round
        if current is None or current.plan.round != round_number:
            raise PhaseClosed(f"round {round_number} is not open")
        if silo not in current.plan.participants:
            raise PhaseClosed(f"{silo} is not a participant of round {round_number}")
        return current

    @staticmethod
    def _stats(current: _Round, silo: str) -> SiloRoundStats:
        return current.stats.setdefault(silo, SiloRoundStats())

    def _fractional_bits(self) -> int:
        bound = sum(self._joined.values()) or 1
        return choose_fractional_bits(self.spec.aggregation.clip_range, bound)

    def _verify(
        self, silo: str, data: bytes, signature: bytes, kind: type[UpdateMetadata] | type[EvaluationReport]
    ) -> tuple[UpdateMetadata | EvaluationReport | None, bool, str | None]:
        """Parse and verify signed bytes; (claims, signature_valid, problem)."""
        key = self._keys.get(silo)
        if key is None:
            return None, False, f"silo_not_enrolled: {silo} is not registered for this job"
        try:
            claims = kind.parse(data)
        except MessageError as error:
            return None, False, f"metadata_invalid: {error}"
        try:
            key.verify(signature, data)
        except SignatureError as error:
            return claims, False, f"signature_invalid: {error.reason}"
        if claims.silo != silo:
            return claims, False, f"identity_mismatch: signed for {claims.silo}, sent by {silo}"
        return claims, True, None

    def _transport_check(self, current: _Round, silo: str, claims: UpdateMetadata) -> str | None:
        """What is wrong with a verified, current update before its payload is read, if anything."""
        if claims.job != self.job.metadata.name:
            return f"wrong_job: the update is for job {claims.job}"
        if claims.vector_length != current.plan.vector_length:
            return f"shape_mismatch: {claims.vector_length} values, the model needs {current.plan.vector_length}"
        if claims.num_samples > self._joined.get(silo, 0):
            return "num_samples_inconsistent: more records than the silo declared when it joined"
        if silo not in current.inputs.expected or current.inputs.closed:
            return f"not_a_survivor: {silo} is not part of round {current.plan.round}'s input step"
        if self._privacy is not None:
            return self._privacy.problem(silo, claims)
        return None

    def _policy_input(
        self,
        current: _Round,
        silo: str,
        claims: UpdateMetadata,
        signature_valid: bool,
        nonce_seen: bool,
        transport_problem: str | None,
    ) -> dict[str, Any]:
        ledger: dict[str, Any] = {"nonce_seen": nonce_seen, "seen_nonces": len(self._nonces.get(silo, ()))}
        if self._privacy is not None and signature_valid:
            ledger |= self._privacy.policy_view(silo, claims)
        policy = self.spec.policy
        return {
            "schema_version": "fedsilo.update/v1",
            "job": {
                "name": self.job.metadata.name,
                "round": current.plan.round,
                "norm_cap": policy.norm_cap,
                "max_epsilon": policy.max_epsilon,
                "aggregation": self.spec.aggregation.mode.value,
                "data_class": policy.data_class.value,
                "min_samples": policy.min_samples,
                "delta": self.spec.privacy.delta,
                "silos": list(self.spec.silos),
            },
            "silo": {
                "name": silo,
                "enrolled": silo in self._keys,
                "max_epsilon": self._silo_ceilings.get(silo),
            },
            "update": {
                "signature_valid": signature_valid,
                "round": claims.round,
                "nonce": claims.nonce,
                "l2_norm": claims.l2_norm,
                "num_samples": claims.num_samples,
                "epsilon_round": claims.epsilon_round,
                "payload_digest": claims.payload_digest,
                "transport_problem": transport_problem,
            },
            "ledger": ledger,
        }
