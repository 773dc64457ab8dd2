"""The aggregator's job state machine: it runs the rounds and nothing else.

``JobCoordinator.run`` drives the rounds in the caller's thread: wait for the silos,
open a round, close its steps at their deadlines, unmask, aggregate, record. gRPC handler
threads call the other public methods, which block on one condition variable until the
step they take part in closes. Updates are decided by ``Admission`` (``_admission.py``),
evaluation reports by ``_evaluation.py``, and a closed round is recorded by ``_record.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, replace
from typing import Any, Final

import numpy as np

from fedsilo.api import AggregationMode, FederatedJob, PrivacyMode
from fedsilo.he import wire
from fedsilo.identity import SigningKey, VerifyKey, sha256_digest
from fedsilo.policy import Reason, Refusal
from fedsilo.protocol import (
    GlobalModelClaim,
    LeaveNotice,
    PolicyVerdict,
    RoundPlan,
    TensorLayout,
    Weights,
    architecture_fingerprint,
    encode_weights,
)
from fedsilo.registry import ModelRegistry
from fedsilo.secagg import SecAggAbort, choose_fractional_bits, choose_graph

from ._admission import Admission, Chunk
from ._aggregation import Aggregation, RoundSum
from ._anomaly import AnomalyScores
from ._attribution import SeenNonces, verify_signed
from ._bounds import expected_weight, sum_problem
from ._checkpoint import Checkpoint, Checkpoints
from ._compression import CompressionPlanner
from ._contracts import (
    JobFailed,
    PrivacyBook,
    RoundFailed,
    RoundObserver,
    RoundSummary,
    ServerStrategy,
    TallyStrategy,
    UpdateGate,
    UpdatesStrategy,
)
from ._evaluation import apply_evaluations, receive_evaluation
from ._homomorphic import HomomorphicJob
from ._metrics import job_finished, job_started, model_scored, round_retried
from ._phases import Phase, PhaseClosed, RunCondition, wait_until
from ._presence import Presence
from ._record import record_round, seal_model, summarize
from ._round import OpenRound, fit_config_document, max_records, require_quorum, round_aggregation
from ._standing import Standing, StandingSource
from ._uploads import UploadSlots

log = logging.getLogger("fedsilo.aggregator")

# Uploads read at once: a plain payload is buffered whole until decided, a masked one holds a chunk.
UPLOAD_SLOTS = 2
# Least time silos get to join before the first round.
JOIN_TIMEOUT_SECONDS = 120.0
# Failed rounds in a row (homomorphic mode: a key holder lost before decrypting) before the job fails.
MAX_ROUND_RETRIES = 3
# The audit log's name for a silo's leave (``JobCoordinator.leave``).
LEAVE_OPERATION: Final = "leave"


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
        model_key: SigningKey,
        observer: RoundObserver | None = None,
        privacy: PrivacyBook | None = None,
        silo_ceilings: Mapping[str, float | None] | None = None,
        join_timeout: float | None = None,
        preprocessing_digest: str | None = None,
        standing: StandingSource | None = None,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self.job = job
        self.spec = job.spec
        # Keys and suspensions change only when a round opens (``_open``); ``_keys`` is the
        # standing's own mapping, so admission, evaluation and masking see one set of keys.
        self._standing = Standing(silo_keys, standing)
        self._keys = self._standing.keys
        self._layout = TensorLayout.of(initial_weights)
        self._weights = initial_weights
        self._model_blob = encode_weights(initial_weights)
        self._model_digest = sha256_digest(self._model_blob)
        # The hub's audit key signs every global model it serves (``seal_model``); round 0's
        # model is sealed here, each later one when its round is recorded.
        self._model_key = model_key
        self._model_seal = seal_model(
            model_key,
            GlobalModelClaim(
                job=job.metadata.name, round=0, model_digest=self._model_digest, parent_digest=None, lineage_digest=None
            ),
        )
        self._strategy = strategy
        self._registry = registry
        self._preprocessing_digest = preprocessing_digest
        self._observer = observer
        self._privacy = privacy
        self._gate = gate
        # Silos need time to start (a trainer loads its data and model before it greets).
        self._join_timeout = join_timeout or float(
            self.spec.join_timeout_seconds or max(JOIN_TIMEOUT_SECONDS, self.spec.round_timeout_seconds)
        )
        self._cond = RunCondition()
        self._presence = Presence(self.spec.silos, self._cond)
        self._nonces = SeenNonces()
        self._round: OpenRound | None = None
        self._final_plan: RoundPlan | None = None
        self._compression = (
            CompressionPlanner(self.spec, self._layout.size)
            if self.spec.compression is not None or self.spec.masked_vote
            else None
        )
        self.summaries: list[RoundSummary] = []
        self._anomaly = AnomalyScores()
        # Homomorphic mode: what outlives a round (every admitted chunk's digest, for replays).
        self._homomorphic = (
            HomomorphicJob(job.metadata.name, gate)
            if self.spec.aggregation.mode is AggregationMode.HOMOMORPHIC
            else None
        )
        # Every closed round is committed here before the next opens (``_checkpoint.py``).
        self._checkpoints = checkpoints
        self._first_round = 1
        self.admission = Admission(
            job,
            self._keys,
            gate,
            self._cond,
            lambda: self._round,
            nonces=self._nonces,
            uploads=UploadSlots(UPLOAD_SLOTS),
            privacy=privacy,
            silo_ceilings=silo_ceilings,
            observer=observer,
            architecture=architecture_fingerprint(initial_weights),
            anomaly=self._anomaly,
            standing=self._standing,
        )

    # ----- calls from silos (gRPC handler threads) ---------------------------------------

    def enrolled(self, silo: str) -> bool:
        """Whether ``silo`` is registered for this job."""
        return silo in self._keys

    def upload_deadline_seconds(self) -> float:
        """How long one update stream may take: half the round's timeout, so a stalled stream is cut off in time."""
        return self.spec.round_timeout_seconds / 2

    def join(self, silo: str, num_samples: int) -> None:
        """Register a silo's presence and data size; a silo that was gone is back (its trainer greeted it)."""
        limit = max_records(self.spec)
        if not 0 < num_samples <= limit:
            raise ValueError(
                f"num_samples must be between 1 and {limit} (the job's clip range and silo count bound it), "
                f"not {num_samples}"
            )
        with self._cond:
            self._presence.join(silo, num_samples)
        log.info("silo %s joined with %d records", silo, num_samples)

    def wait_round(self, silo: str, after_round: int, timeout: float) -> RoundPlan | None:
        """The plan of the first round after ``after_round``; None if none opened in time.

        A gone silo gets the plan too, without itself among the participants: waiting alone
        does not bring it back (a sidecar whose trainer died keeps waiting), but it learns
        the job went on without it and can join again once its trainer answers. So does a
        silo that left the open round and whose sidecar, restarted, asks again: no step of
        that round takes its messages any more, so it sits the round out and takes the next.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._presence.waiting(silo, after_round)

            def ready() -> bool:
                current = self._round
                return self._final_plan is not None or (current is not None and current.plan.round > after_round)

            if not wait_until(self._cond, ready, deadline):
                return None
            self._presence.served(silo)
            if self._final_plan is not None:
                return self._final_plan
            assert self._round is not None
            plan = self._round.plan
            if silo in self._round.left:
                return replace(plan, participants=tuple(s for s in plan.participants if s != silo))
            return plan

    def model_blob(self, silo: str, round_number: int) -> bytes:
        """The global model a silo trains from in ``round_number`` (safetensors bytes)."""
        with self._cond:
            current = self._require_round(silo, round_number)
            current.stats_of(silo).bytes_down += len(self._model_blob)
            return self._model_blob

    def setup_step(self, step: str, silo: str, round_number: int, body: bytes) -> bytes:
        """Post a secure-aggregation setup message; block until the step closes; the reply."""
        with self._cond:
            current = self._require_round(silo, round_number)
            if step not in current.steps:
                raise PhaseClosed(f"this round has no {step} step ({current.plan.aggregation} mode)")
            phase = current.steps[step]
            phase.post(silo, body)
            current.stats_of(silo).bytes_up += len(body)
            self._cond.notify_all()
            wait_until(self._cond, lambda: step in current.replies or current.plan.failure != "", phase.deadline + 5)
            reply = current.replies.get(step, {}).get(silo)
            if reply is None:
                raise PhaseClosed(f"{silo} is no longer part of round {round_number}")
            current.stats_of(silo).bytes_down += len(reply)
            return reply

    def submit_update(
        self, silo: str, metadata_json: bytes, signature: bytes, chunks: Iterable[Chunk]
    ) -> PolicyVerdict:
        """Decide one update through the admission steps (``Admission.submit``). Never raises for bad input."""
        return self.admission.submit(silo, metadata_json, signature, chunks)

    def reserve_upload(self, silo: str, round_number: int) -> float:
        """Keep an upload slot for ``silo`` (``Admission.reserve_upload``); the seconds it is kept."""
        return self.admission.reserve_upload(silo, round_number)

    def withdraw_reservation(self, silo: str) -> None:
        """Free the upload slot kept for ``silo`` (``Admission.withdraw_reservation``)."""
        self.admission.withdraw_reservation(silo)

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
            current.stats_of(silo).bytes_down += len(current.unmask_body)
            return current.unmask_body

    def decryption_share_limit(self) -> int:
        """The most bytes one decryption share may have (homomorphic mode; 0 otherwise)."""
        if self._homomorphic is None:
            return 0
        return wire.decryption_bound(self._homomorphic.params, self._homomorphic.params.chunks(self._layout.size + 1))

    def unmask(self, silo: str, round_number: int, body: bytes) -> PolicyVerdict:
        """A survivor's revealed shares."""
        with self._cond:
            current = self._require_round(silo, round_number)
            if current.unmask is None:
                raise PhaseClosed("this round has no unmasking step")
            current.unmask.post(silo, body)
            current.stats_of(silo).bytes_up += len(body)
            self._cond.notify_all()
        return PolicyVerdict(True)

    def leave(self, silo: str, notice_json: bytes, signature: bytes) -> None:
        """A stopping silo's signed ``LeaveNotice``: it is gone now, as if it had let the open step's deadline pass.

        Every step of the open round stops waiting for it (a step it already posted to keeps
        its message: an update it uploaded still counts, and masked recovery unmasks it
        without it), it is out of later rounds until it joins again, and the leave is in the
        audit log before it takes effect. Raises ``Refusal`` (and changes nothing) for a
        notice that is not verifiably ``silo``'s, names another job or a round that is not
        the current one (0 before the first; or the one before, from a silo that has done
        nothing in the current one yet), was used before, or comes after the job ended.
        """
        notice = verify_signed(self._keys, silo, notice_json, signature, LeaveNotice)
        name = self.job.metadata.name
        if notice.job != name:
            raise Refusal(Reason.WRONG_JOB, f"the leave names job {notice.job!r}; this hub runs {name!r}")
        with self._cond:
            if self._final_plan is not None:
                raise Refusal(Reason.NO_OPEN_ROUND, "the job has ended: there is nothing left to leave")
            current = self._round
            round_number = current.plan.round if current is not None else 0
            # A sidecar names the round of the last plan it got: one stopped as the next round opened,
            # before its plan reached it, names the round before, and has done nothing in this one.
            unaware = current is not None and notice.round == round_number - 1 and silo not in current.stats
            if notice.round != round_number and not unaware:
                raise Refusal(
                    Reason.STALE_ROUND, f"the leave names round {notice.round}; the current round is {round_number}"
                )
            if not self._nonces.first_use(silo, notice.nonce):
                raise Refusal(Reason.NONCE_REPLAYED, "this leave was already received")
            if current is not None and silo in current.left:
                raise Refusal(Reason.NOT_A_SURVIVOR, f"{silo} already left round {round_number}")
            uploaded = current is not None and silo in current.inputs.posted
            self._gate.record_operation(
                job=name,
                operation=LEAVE_OPERATION,
                round_number=round_number,
                reason=notice.reason,
                details={"silo": silo, "uploaded": uploaded},
            )
            if current is not None:
                current.leave(silo, notice.reason)
            self._presence.gone([silo], round_number, f"left ({notice.reason})")
            self._cond.notify_all()

    def refuse_call(self, silo: str, refusal: Refusal) -> None:
        """Record a call the gRPC edge refused (a rate limit) in the audit log, against the round now open."""
        with self._cond:
            round_number = self._round.plan.round if self._round is not None else 0
        self._gate.refuse(job=self.job.metadata.name, round_number=round_number, silo=silo, refusal=refusal)

    def report_evaluation(self, silo: str, metadata_json: bytes, signature: bytes) -> PolicyVerdict:
        """A silo's signed evaluation of the global model it received this round."""
        return receive_evaluation(
            self._keys,
            self._nonces,
            self.job.metadata.name,
            self._cond,
            lambda: self._round,
            silo,
            metadata_json,
            signature,
        )

    # ----- the round loop ---------------------------------------------------------------

    def resume(self, checkpoint: Checkpoint) -> None:
        """Go on after ``checkpoint``'s round: its model, seal, strategy state and round summaries.

        Call before ``run``. Raises ``ValueError`` when the checkpoint is another job's or its
        model does not fit this job's architecture.
        """
        document = checkpoint.document
        if document.job != self.job.metadata.name:
            raise ValueError(f"{checkpoint.path} is a checkpoint of job {document.job}, not {self.job.metadata.name}")
        if TensorLayout.of(checkpoint.weights) != self._layout:
            raise ValueError(f"the model in {checkpoint.path} does not have this job's architecture")
        self._strategy.restore(checkpoint.strategy_state)
        self._weights = checkpoint.weights
        self._model_blob = encode_weights(checkpoint.weights)
        self._model_digest = sha256_digest(self._model_blob)
        self._model_seal = checkpoint.seal
        self.summaries = checkpoint.summaries()
        if self.summaries:
            last = self.summaries[-1].silos
            self._anomaly.restore({s: v.anomaly_score for s, v in last.items() if v.anomaly_score is not None})
        self._first_round = document.round + 1
        log.warning("resuming job %s after round %d (%s)", document.job, document.round, checkpoint.path)

    def run(self) -> list[RoundSummary]:
        """Run every round and the closing evaluation; raise ``JobFailed`` if quorum is lost or ``abort`` is called."""
        self._cond.loop = threading.current_thread()
        job_started(self.job)
        try:
            if self._first_round == 1:
                self._commit()  # round 0: the initial model, which rollback and unlearning may return to
            self._await_joins()
            round_number = self._run_rounds()
            self._run_final_evaluation(round_number)
        except JobFailed as error:
            self._finish(str(error))
            raise
        except Exception as error:
            # Silos' inputs are bounded and refused before they reach the loop; should anything
            # still break it, the job ends with its reason (an outcome), never a bare crash.
            log.exception("the round loop failed")
            failure = f"the round loop failed: {type(error).__name__}: {error}"
            self._finish(failure)
            raise JobFailed(failure) from error
        self._finish("")
        return self.summaries

    def abort(self, reason: str) -> None:
        """End the job from outside the round loop (a silo process died): ``run`` raises ``JobFailed(reason)``."""
        self._cond.abort(reason)

    def _run_rounds(self) -> int:
        """Run ``spec.rounds`` completed rounds; a failed round is recorded and retried under the next number.

        Returns the number the closing evaluation takes. Round numbers only grow, so a silo
        waiting for "the round after r" is never handed r twice. A resumed job goes on after its
        checkpoint's round, with the rounds it completed before (``resume``).
        """
        round_number, completed, failures = self._first_round, len(self.summaries), 0
        while completed < self.spec.rounds:
            try:
                self._run_round(round_number)
            except RoundFailed as failed:
                failures += 1
                round_retried(self.job)
                log.error(
                    "round %d failed and is retried (%d of %d): %s", round_number, failures, MAX_ROUND_RETRIES, failed
                )
                if failures > MAX_ROUND_RETRIES:
                    raise JobFailed(f"{failures} rounds in a row failed; the last: {failed}") from failed
                with self._cond:
                    assert self._round is not None
                    self._round.plan = RoundPlan(**{**asdict(self._round.plan), "failure": str(failed)})
                    # The model stays in force: re-signed as the model after this round, so the
                    # retry starts from "the round before's model" as every sidecar checks.
                    kept = GlobalModelClaim.parse(self._model_seal.claim)
                    self._model_seal = seal_model(self._model_key, kept.model_copy(update={"round": round_number}))
                    self._cond.notify_all()
            else:
                completed, failures = completed + 1, 0
            round_number += 1
        return round_number

    def _await_joins(self) -> None:
        with self._cond:
            joined = self._presence.await_joins(time.monotonic() + self._join_timeout)
            if joined < len(self.spec.silos) and joined < self.spec.min_silos:
                raise JobFailed(
                    f"only {joined} of {len(self.spec.silos)} silos joined within "
                    f"{self._join_timeout:.0f}s; minSilos is {self.spec.min_silos}"
                )

    def _open(self, round_number: int, evaluate_only: bool) -> OpenRound:
        deadline = time.monotonic() + self.spec.round_timeout_seconds
        resumed = round_number == self._first_round > 1
        participants = self._presence.participants(None if resumed else round_number - 1, deadline)
        # The round boundary: rotated keys and suspensions take effect now, for the whole round.
        self._standing.advance(round_number)
        if len(participants) < self.spec.min_silos:
            raise JobFailed(
                f"round {round_number}: quorum lost: only {len(participants)} silos are live "
                f"({', '.join(participants) or 'none'}); minSilos is {self.spec.min_silos}"
            )
        records = dict(self._presence.joined)
        masked = self.spec.aggregation.mode is AggregationMode.MASKED
        fit_config = {} if evaluate_only else fit_config_document(self._strategy.configure_round(round_number))
        graph = choose_graph(self.spec) if masked else None
        choice = None
        if self._compression is not None and not evaluate_only:
            choice = self._compression.plan(round_number, participants, records)
        plan = RoundPlan(
            round=round_number,
            evaluate_only=evaluate_only,
            fit_config=fit_config,
            aggregation=self.spec.aggregation.mode.value,
            fractional_bits=choose_fractional_bits(self.spec.aggregation.clip_range, sum(records.values()) or 1)
            if masked
            else 0,
            threshold=graph.threshold if graph is not None else 0,
            participants=participants,
            model_digest=self._model_digest,
            vector_length=self._layout.size + 1,
            model_claim=self._model_seal.claim,
            model_signature=self._model_seal.signature,
            compression=choice.settings if choice is not None else None,
            # Which key each participant signs with from this boundary on: a rotated silo's sidecar switches here.
            signing_keys={name: self._keys[name].fingerprint() for name in participants if name in self._keys},
        )
        spill_dir = self._checkpoints.directory.parent if self._checkpoints is not None else None
        aggregation = (
            None if evaluate_only else round_aggregation(self.job, plan, self._keys, self._homomorphic, spill_dir)
        )
        expected = frozenset(participants)
        steps = {
            name: Phase[bytes](name, expected, deadline) for name in (aggregation.setup_steps if aggregation else ())
        }
        current = OpenRound(
            plan=plan,
            aggregation=aggregation,
            steps=steps,
            inputs=Phase[PolicyVerdict]("input", expected, deadline),
            unmask=None,
            records=records,
            compression_reason=choice.reason if choice is not None else "",
            graph=graph.record(self.job.metadata.name, round_number, len(self.spec.silos))
            if graph is not None and not evaluate_only
            else None,
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
        if current.graph is not None and self.spec.aggregation.neighbours is not None:
            # A job that chose its masking graph has each round's graph on record (seed, degree, bound).
            self._gate.record_operation(
                job=self.job.metadata.name,
                operation="neighbour_graph",
                round_number=round_number,
                reason=str(current.graph["reason"]),
                details=current.graph,
            )
        aggregation = current.aggregation
        assert aggregation is not None
        with self._cond:
            alive = self._run_setup_steps(current, aggregation)
            if current.steps:
                self._restart(current.inputs, alive)
            wait_until(self._cond, current.inputs.complete, current.inputs.deadline)
            current.inputs.closed = True
            current.release_setup_messages()
            missing = current.inputs.missing()
            self._dropped(current, missing, "input")
            for silo in missing:
                aggregation.exclude(silo, "dropped before sending its update")
            accepted = tuple(s for s, v in current.inputs.posted.items() if v.accepted)
            if len(accepted) < self.spec.min_silos:
                raise JobFailed(
                    f"round {round_number}: quorum lost: {len(accepted)} updates accepted "
                    f"({', '.join(accepted) or 'none'}); minSilos is {self.spec.min_silos}"
                )
            if aggregation.setup_steps:
                self._run_unmask(current, aggregation, accepted)
        if self._compression is not None:
            self._compression.observe(current.stats)
        total = aggregation.result()
        signed = {silo: current.contribution_of(silo) for silo in accepted}
        current.void = aggregation.result_problem() or sum_problem(
            total,
            signed,
            # Silo-level DP adds noise after the norm was signed; compression sends the update plus the
            # silo's error-feedback residual: neither sum is bounded by the signed norms.
            check_norm=self.spec.privacy.mode is not PrivacyMode.SILO and current.plan.compression is None,
            coordinate_error=aggregation.coordinate_error(),
        )
        if current.void is not None:
            log.warning("round %d is void, the model stays: %s", round_number, current.void)
            new_weights = self._weights
        else:
            new_weights = self._next_weights(aggregation, total, expected_weight(signed))
        self._record_distances(current, aggregation, new_weights)
        self._score_anomalies(current, accepted)
        if self._privacy is not None:
            self._privacy.round_closed(round_number, accepted)
        with self._cond:
            self._close(current, new_weights, accepted)

    def _next_weights(self, aggregation: Aggregation, total: RoundSum, divisor: float) -> Weights:
        """The strategy's next model: from the mean update ``total / divisor``, the vote's tally or every update."""
        tally = aggregation.tally()
        if tally is not None:
            if not isinstance(self._strategy, TallyStrategy):
                raise JobFailed(f"strategy {self.spec.strategy.name.value} cannot step from a sign-vote tally")
            return self._strategy.aggregate_tally(self._weights, tally)
        if not isinstance(self._strategy, UpdatesStrategy):
            # The float32 mean is the only whole copy: the strategy's input, freed once it has stepped.
            return self._strategy.aggregate(self._weights, self._layout.unflatten(total.mean(divisor)))
        payloads = aggregation.admitted_updates()
        if payloads is None:
            raise JobFailed(f"strategy {self.spec.strategy.name.value} needs aggregation.mode plain")
        # A plain payload is [w * update..., w] with w checked against the signed record count (> 0).
        updates = [self._layout.unflatten((p[:-1] / p[-1]).astype(np.float32)) for p in payloads.values()]
        return self._strategy.aggregate_updates(self._weights, updates)

    def _record_distances(self, current: OpenRound, aggregation: Aggregation, new_weights: Weights) -> None:
        """In plain mode, each admitted update's L2 distance and cosine to the step the model took."""
        sketches = aggregation.update_sketches()
        if sketches is None:
            return
        # The step new - old is formed in float64 block by block inside the sketch, from the tensors
        # themselves: neither model is flattened and the step is never whole.
        self._layout.check(new_weights)
        self._layout.check(self._weights)
        steps = sketches.distances(list(new_weights.values()), list(self._weights.values()))
        for silo, (distance, cosine) in steps.items():
            stats = current.stats_of(silo)
            stats.update_distance, stats.update_cosine = distance, cosine

    def _score_anomalies(self, current: OpenRound, accepted: tuple[str, ...]) -> None:
        """Fold the round's signals (distances in plain mode, signed norms always) into the silos' scores."""
        stats = {silo: current.stats_of(silo) for silo in accepted}
        signals = {
            "distance": {s: v.update_distance for s, v in stats.items() if v.update_distance is not None},
            "l2_norm": {s: v.l2_norm_claim for s, v in stats.items() if v.l2_norm_claim is not None},
        }
        self._anomaly.observe(signals)
        scores = self._anomaly.snapshot()
        for silo in current.plan.participants:
            if silo in scores:
                current.stats_of(silo).anomaly_score = scores[silo]

    def _run_setup_steps(self, current: OpenRound, aggregation: Aggregation) -> set[str]:
        """Close each secure-aggregation setup step in turn (lock held); the silos still alive after them."""
        round_number = current.plan.round
        alive = set(current.plan.participants)
        for index, (name, phase) in enumerate(current.steps.items()):
            if index:
                self._restart(phase, alive)
            wait_until(self._cond, phase.complete, phase.deadline)
            phase.closed = True
            alive &= set(phase.posted)
            self._dropped(current, phase.missing(), name)
            require_quorum(self.spec, len(alive), round_number, f"the {name} step")
            try:
                replies = aggregation.setup_step(name, {s: phase.posted[s] for s in alive})
            except SecAggAbort as error:
                raise JobFailed(f"round {round_number}: {error}") from error
            for silo in alive - replies.keys():
                log.warning("round %d: %s left out at the %s step", round_number, silo, name)
            alive = set(replies)
            current.replies[name] = replies
            self._cond.notify_all()
        return alive

    def _run_unmask(self, current: OpenRound, aggregation: Aggregation, accepted: tuple[str, ...]) -> None:
        """Ask the accepted silos for their shares and unmask the sum (lock held)."""
        round_number = current.plan.round
        current.unmask = Phase[bytes](
            "unmask",
            aggregation.decryptors(frozenset(accepted)),
            time.monotonic() + self.spec.round_timeout_seconds,
            # A survivor that left is not asked: the others' shares unmask its input (or, homomorphic, fail the round).
            left=set(current.left),
        )
        current.unmask_body = aggregation.unmask_request(frozenset(accepted))
        self._cond.notify_all()
        wait_until(self._cond, current.unmask.complete, current.unmask.deadline)
        current.unmask.closed = True
        self._dropped(current, current.unmask.missing(), "unmask")
        try:
            aggregation.unmask(dict(current.unmask.posted))
        except RoundFailed:
            raise
        except Exception as error:  # whatever a survivor's shares break, the job fails with the reason
            raise JobFailed(f"round {round_number}: unmasking failed: {error}") from error

    def _close(self, current: OpenRound, new_weights: Weights, accepted: tuple[str, ...]) -> None:
        parent = self._model_digest
        self._weights = new_weights
        self._model_blob = encode_weights(new_weights)
        self._model_digest = sha256_digest(self._model_blob)
        self._apply_evaluations(current)
        summary = summarize(
            current,
            accepted,
            self._model_digest,
            audit_head=self._gate.checkpoint(),
            ledger_head=self._privacy.signed_head() if self._privacy is not None else None,
        )
        self._model_seal = record_round(
            self.job,
            self._registry,
            current,
            summary,
            new_weights,
            parent,
            self._model_key,
            self._preprocessing_digest,
            # The bytes the hub serves: the registry stores them instead of encoding the model again.
            encoded=self._model_blob,
        )
        # Published once its model and lineage are in the registry: whoever sees a round's
        # summary (a status reader, a test) can read its registry entry.
        self.summaries.append(summary)
        self._commit()
        if self._observer is not None:
            self._observer.round_finished(summary)

    def _run_final_evaluation(self, round_number: int) -> None:
        with self._cond:
            current = self._open(round_number, evaluate_only=True)
            personalizing = self.spec.personalization is not None and self.spec.personalization.fine_tune_epochs > 0

            def reported() -> bool:
                # A silo that left during the closing evaluation is not waited for.
                participants = set(current.plan.participants) - current.left.keys()
                return participants <= current.evaluations.keys() and (
                    not personalizing or participants <= current.personalized.keys()
                )

            wait_until(self._cond, reported, current.inputs.deadline)
            self._apply_evaluations(current)
        if self._observer is not None and self.summaries:
            self._observer.round_finished(self.summaries[-1])

    def _finish(self, failure: str) -> None:
        job_finished(self.job, failure)
        with self._cond:
            self._final_plan = RoundPlan(round=0, finished=True, failure=failure)
            if self._round is not None:
                self._round.plan = RoundPlan(**{**asdict(self._round.plan), "failure": failure or "finished"})
            self._cond.notify_all()

    # ----- helpers ------------------------------------------------------------------------

    def _apply_evaluations(self, current: OpenRound) -> None:
        """The silos' reports in ``current`` describe the previous round's model: onto its summary and the metrics."""
        if self.summaries:
            target = self.summaries[-1]
            apply_evaluations(current, target)
            if target.quality is not None:
                model_scored(self.job, target.quality)

    def _commit(self) -> None:
        """Checkpoint the last closed round (durably, before the next opens), if the hub keeps checkpoints."""
        if self._checkpoints is not None:
            self._checkpoints.write(
                self.job.metadata.name,
                self.spec.strategy.name.value,
                self._weights,
                self._strategy.state(),
                self._model_seal,
                self.summaries,
            )

    def _dropped(self, current: OpenRound, missing: Iterable[str], step: str) -> None:
        """The silos that missed ``step`` are gone; one that left is gone since its leave, or back if it joined since."""
        self._presence.gone(
            (s for s in missing if s not in current.left), current.plan.round, f"dropped during the {step} step"
        )

    def _restart(self, phase: Phase[Any], alive: set[str]) -> None:
        """Open the next step to the silos still alive, with a full timeout of its own."""
        phase.expected = frozenset(alive)
        phase.deadline = time.monotonic() + self.spec.round_timeout_seconds
        self._cond.notify_all()

    def _require_round(self, silo: str, round_number: int) -> OpenRound:
        current = self._round
        if current is None:
            raise PhaseClosed(f"round {round_number} is not open")
        current.require(silo, round_number)
        return current
