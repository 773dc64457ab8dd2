"""The sidecar's main loop: the silo's only network path, and the holder of its identity.

Per round it fetches the global model from the aggregator (it dials out; nothing dials
in), verifies the hub's signature on it (``ModelCheck``, the head of every round's work:
a model that fails is refused and never reaches the trainer), hands it to its trainer over
the trainer link, and sends what comes back along the update's way (``Sidecar.steps``: check, clip, privacy, encode or mask, sign, send; see
``_pipeline``), then reports the verdict it gets back. Asked to stop (SIGTERM, which
``fedsilo.launch`` turns into ``Terminated``), it sends the hub a signed Leave before it
exits. Called by ``fedsilo sidecar`` and, per silo, by ``fedsilo run``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Literal

import grpc

from fedsilo.api import AggregationMode
from fedsilo.compression import ErrorFeedback
from fedsilo.identity import SiloIdentity, sha256_digest
from fedsilo.launch import Terminated
from fedsilo.privacy import plan_for_silo
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.protocol import (
    EvaluationReport,
    LeaveNotice,
    MessageError,
    PolicyVerdict,
    RoundPlan,
    TensorLayout,
    TrainerEvaluation,
    TrainerTask,
    blob_from_chunks,
    decode_weights,
    follow_parent,
    join_request,
    plan_from_proto,
    round_ref,
    rpc,
    signed_metadata,
    wait_round_request,
)

from ._compress import Compress
from ._config import SidecarConfig
from ._connection import Connection
from ._homomorphic import HomomorphicEncode
from ._keys import KeyNotHeld, SiloKeys
from ._link import TrainerLinkService
from ._masking import MaskedEncode
from ._model_check import ModelCheck, ModelRefused
from ._pipeline import OutgoingUpdate, Step, refusal_verdict, run_steps
from ._privacy import ChargeLedger, PrivacyGuard, SiloNoise
from ._private import KeepPrivate, private_names
from ._sending import Send, Sign
from ._trainer_statistics import statistics_before_training
from ._update import Clip, check_weights, plain_encode

log = logging.getLogger("fedsilo.sidecar")

# A trainer always has a task request open while it waits (re-asked at once when one times
# out); one that has not called for this long when a round starts is dead, or still stuck on
# an earlier task, and could not take this round's task in time anyway.
TRAINER_SILENT_SECONDS = 10.0
# Largest model a sidecar will download (guards against a hostile or broken hub).
MODEL_LIMIT_BYTES = 1 << 31
# How long a sidecar keeps dialling a hub that went away: a restarted aggregator pod resumes
# at its last checkpoint and needs time to be scheduled, start and load it.
RECONNECT_SECONDS = 600.0
# An attempt at the statistics phase that lasted this long had reached the hub before it went away.
TOOK_PART_SECONDS = 2.0
# How long a stopping sidecar gives the hub to take its Leave: best effort, well inside the pod's
# grace period, so a hub that is down or slow never holds the exit (it then counts at the deadline).
LEAVE_TIMEOUT_SECONDS = 1.5
# What a stopping sidecar tells the hub (and the hub's audit log keeps).
LEAVE_REASON = "the sidecar was asked to stop (SIGTERM: pod deleted or node drained)"


class Sidecar:
    """One silo's sidecar."""

    def __init__(
        self,
        config: SidecarConfig,
        identity: SiloIdentity,
        link: TrainerLinkService,
        *,
        on_verdict: Callable[[int, PolicyVerdict], None] | None = None,
        keys: SiloKeys | None = None,
    ) -> None:
        self.config = config
        self._identity = identity
        # The key each round is signed with (switched where the hub says: key rotation), and the peers'.
        self._keys = keys or SiloKeys(config.silo, identity.signing_key, peers=config.peer_keys)
        self._connection: Connection | None = None
        self._link = link
        self._on_verdict = on_verdict
        self._job_name = config.job.metadata.name
        self._spec = config.job.spec
        self._privacy: PrivacyGuard | None = None
        # The parameters this silo keeps (personalization); declared by the trainer at hello.
        self._private: frozenset[str] = frozenset()
        # The round of the last plan the hub handed this silo (0 before the first): the one a Leave names.
        self._round_number = 0
        key = config.aggregator_key
        self._model_check = ModelCheck(self._job_name, key) if key is not None else None
        if key is None:
            log.warning("global models are NOT verified: no aggregator key was given (--aggregator-key)")
        else:
            log.info("global models are verified with the aggregator key %s", key.fingerprint())

    def _guard(self, num_samples: int) -> PrivacyGuard | None:
        """The silo's privacy guard for this job, planned from its own record count; None without DP."""
        plan = plan_for_silo(self._spec, num_samples)
        if plan is None:
            return None
        if self.config.ledger is None:
            raise ValueError("the job runs with differential privacy: give the sidecar its ledger (--ledger PATH)")
        log.info(
            "privacy: %s mode, noise multiplier %.4g, delta %g, %s accountant; ledger %s",
            plan.mode.value,
            plan.noise_multiplier,
            plan.delta,
            plan.accountant,
            self.config.ledger,
        )
        return PrivacyGuard(
            plan,
            # Signed with the silo's identity key: only the silo can extend its own ledger.
            PrivacyLedger(self.config.ledger, self._identity.signing_key),
            self.config.silo,
            self.config.ledger_job,
            job_ceiling=self._spec.policy.max_epsilon,
            silo_ceiling=self.config.silo_max_epsilon,
        )

    def run(self) -> int:
        """Take part in every round; 0 when the job finished, 1 when it failed."""
        follow_parent()
        connection = Connection(
            self.config.aggregator, self._identity.tls, self.config.aggregator_ca_pem, self.config.identity_dir
        )
        self._connection = connection
        try:
            stub = connection.stub
            preprocessing = self._spec.data.preprocessing
            statistics = preprocessing is not None and preprocessing.federated
            if statistics:
                self._statistics(stub)
            if self._spec.statistics_only:
                # The phase was the whole job (the hub ends it by the same rule): no round follows.
                self._end_trainer(0)
                log.info(
                    "job %s finished: its statistics are released, and a statistics-only job trains no round",
                    self._job_name,
                )
                return 0
            num_samples = self._hello()
            self._privacy = self._guard(num_samples)
            # After the phase, the hub builds round 0's model with the transform before it serves training.
            self._join(stub, num_samples, RECONNECT_SECONDS if statistics else None)
            steps = self.steps(stub)
            after = 0
            while True:
                try:
                    plan = self._wait_round(stub, after)
                except grpc.RpcError as error:
                    after = self._reconnect(stub, num_samples, error)
                    continue
                if plan.finished:
                    self._end_trainer(after + 1)
                    if plan.failure:
                        log.error("job %s failed: %s", self._job_name, plan.failure)
                        return 1
                    log.info("job %s finished", self._job_name)
                    return 0
                self._round_number = plan.round
                silent = self._link.trainer_silent_for()
                if silent > TRAINER_SILENT_SECONDS:
                    # A dead or stuck trainer: no task it cannot take, and no update; the silo
                    # stays gone at the hub until its trainer calls the link again.
                    log.warning("round %d: not taking part: the trainer has been silent for %.0fs", plan.round, silent)
                elif self.config.silo not in plan.participants:
                    # The hub counted this silo as gone (it missed a deadline). A trainer on the link
                    # right now is alive: join again, for the next round; a dead one stays out.
                    if self._link.trainer_connected():
                        log.warning("round %d went on without this silo; joining again", plan.round)
                        self._join(stub, num_samples)
                else:
                    try:
                        self._keys.advance(plan)
                    except KeyNotHeld as error:
                        # Signing with a key the hub no longer takes would only be refused: sit the round out.
                        log.error("%s", error)
                        after = plan.round
                        continue
                    connection.renew()  # a renewed certificate, before this round's calls
                    try:
                        self._round(stub, steps, plan, num_samples)
                    except grpc.RpcError as error:
                        after = self._reconnect(stub, num_samples, error)
                        continue
                after = plan.round
        except Terminated:
            self._leave(connection.stub)
            raise
        finally:
            connection.close()

    def _leave(self, stub: rpc.AggregatorStub) -> None:
        """Tell the hub this silo leaves now, so no step waits out its deadline for it; best effort, bounded.

        Nothing on the silo is undone: a round its ledger charged stays charged, as for any
        dropout (the update may have been counted). A hub that is down, slow or refuses the
        notice is logged and left alone; the silo then counts as gone at the step's deadline.
        """
        notice = LeaveNotice(
            job=self._job_name,
            round=self._round_number,
            silo=self.config.silo,
            nonce=secrets.token_hex(16),
            reason=LEAVE_REASON,
        )
        signed = notice.canonical_bytes()
        try:
            stub.Leave(signed_metadata(signed, self._keys.sign(signed)), timeout=LEAVE_TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            log.warning(
                "stopping: the hub did not take this silo's leave (%s: %s); it counts as gone at the step's deadline",
                error.code().name,
                error.details(),
            )
            return
        log.info("stopping: the hub took this silo's leave in round %d", self._round_number)

    def _end_trainer(self, round_number: int) -> None:
        """Hand the trainer the end of the job; a live one gets time to take it before the link closes."""
        # A dead or stuck trainer would only hold the sidecar's exit back: it is not waited for.
        patience = 0.0 if self._link.trainer_silent_for() > TRAINER_SILENT_SECONDS else TRAINER_SILENT_SECONDS
        if not self._link.offer_end(round_number, patience) and patience:
            log.warning("the trainer did not take the end of the job within %.0fs", patience)

    def _reconnect(self, stub: rpc.AggregatorStub, num_samples: int, error: grpc.RpcError) -> int:
        """The hub went away (``UNAVAILABLE``): join it again once it is back; the round to wait after (0).

        A restarted hub resumes at its last completed round, which may be one this sidecar
        already took part in, so it waits for whatever round opens next. Any other error, or
        a hub still gone after ``RECONNECT_SECONDS``, ends the sidecar as before.
        """
        if error.code() != grpc.StatusCode.UNAVAILABLE:
            raise error
        log.warning("the aggregator is unreachable (%s); joining again when it is back", error.details())
        self._join(stub, num_samples, RECONNECT_SECONDS)
        return 0

    def _statistics(self, stub: rpc.AggregatorStub) -> None:
        """The statistics phase before training: the trainer's totals in, the fitted transform back to it.

        A hub that goes away during the phase (its process died) is waited for as in a round
        (``RECONNECT_SECONDS``), and the phase taken part in again from the join: the noised
        totals sent again are the ones sent before (``statistics_member`` keeps them).
        """
        deadline = time.monotonic() + self.config.connect_timeout
        while True:
            attempt = time.monotonic()
            try:
                statistics_before_training(
                    stub,
                    self._link,
                    self.config,
                    self._identity.signing_key,
                    self.config.peer_keys,
                    timeout=float(self._spec.round_timeout_seconds),
                )
                return
            except grpc.RpcError as error:
                now = time.monotonic()
                if error.code() == grpc.StatusCode.UNAVAILABLE and now - attempt > TOOK_PART_SECONDS:
                    # Not a hub that is not serving yet: one that went away while this silo took part.
                    log.warning(
                        "the aggregator went away during the statistics phase (%s); taking part again once it is back",
                        error.details(),
                    )
                    deadline = now + RECONNECT_SECONDS
                # The hub is not serving yet (or went away): take part again, from the join, once it is.
                if error.code() != grpc.StatusCode.UNAVAILABLE or now > deadline:
                    raise
                time.sleep(0.5)

    def _hello(self) -> int:
        self._link.offer(TrainerTask(kind="hello", round=0))
        result = self._link.await_result(0, timeout=self.config.connect_timeout * 5)
        if result.header.num_samples is None:
            raise MessageError("TrainerReply: the answer to hello carries no num_samples")
        self._private = private_names(self._spec, result.header.private_parameters)
        if self._private:
            log.info("%d parameters stay in this silo: %s", len(self._private), ", ".join(sorted(self._private)))
        return result.header.num_samples

    def _join(self, stub: rpc.AggregatorStub, num_samples: int, patience: float | None = None) -> None:
        deadline = time.monotonic() + (self.config.connect_timeout if patience is None else patience)
        while True:
            try:
                stub.Join(join_request(self._job_name, self.config.silo, num_samples), timeout=10)
                return
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _wait_round(self, stub: rpc.AggregatorStub, after: int) -> RoundPlan:
        while True:
            if self._connection is not None:
                # Between rounds a short-lived certificate may be renewed (and the old one expire).
                self._connection.renew()
            try:
                reply = stub.WaitRound(wait_round_request(self._job_name, self.config.silo, after), timeout=60)
                return plan_from_proto(reply)
            except grpc.RpcError as error:
                if error.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                    raise
                if error.code() == grpc.StatusCode.UNAVAILABLE:
                    # The hub went away: after a job finishes its server stops.
                    raise
                continue

    def steps(self, stub: rpc.AggregatorStub) -> list[Step]:
        """An update's way out, top to bottom (see ``_pipeline``); built once per job."""
        spec = self._spec
        privacy = self._privacy
        encode: Step = plain_encode
        if spec.aggregation.mode is AggregationMode.MASKED:
            encode = MaskedEncode(self.config, self._keys, stub)
        elif spec.aggregation.mode is AggregationMode.HOMOMORPHIC:
            encode = HomomorphicEncode(self.config, self._keys, stub)
        compression = spec.compression
        return [
            *([KeepPrivate(self._private)] if self._private else []),  # private parameters never leave
            check_weights,  # the trainer's tensors: names, shapes, finite values
            Clip(spec.policy.norm_cap, spec.aggregation.clip_range),  # the norm cap and fixed-point range
            *([SiloNoise(privacy, spec.aggregation.clip_range)] if privacy else []),  # budget, noise, weight
            # The round's quantization / sparsification, after clip and noise; its residual stays here.
            *(
                [
                    Compress(
                        spec.aggregation.mode is AggregationMode.MASKED,
                        compression.error_feedback,
                        feedback=ErrorFeedback(compression.error_feedback_fraction),
                    )
                ]
                if compression is not None
                else [Compress(masked=True, error_feedback=False, vote=True)]  # masked sign vote: the signs
                if spec.masked_vote
                else []
            ),
            encode,  # masked: fixed point + pairwise masks; homomorphic: CKKS chunks; plain: [w * update..., w]
            *([ChargeLedger(privacy)] if privacy else []),  # the ledger, before anything leaves
            Sign(
                self._job_name, self.config.silo, self._keys, self.config.trainer_image_digest
            ),  # the claims the policy reads, signed with the round's key
            Send(
                stub, self._job_name, self.config.silo, spec.round_timeout_seconds
            ),  # the wire; the verdict goes back up
        ]

    def _round(self, stub: rpc.AggregatorStub, steps: list[Step], plan: RoundPlan, num_samples: int) -> None:
        blob = blob_from_chunks(
            stub.GetModel(round_ref(self._job_name, plan.round, self.config.silo)), MODEL_LIMIT_BYTES
        )
        if self._model_check is not None:
            try:
                self._model_check(plan, blob)
            except ModelRefused as refused:
                self._verdict(plan.round, refusal_verdict(plan.round, refused))
                return
        elif plan.model_digest != sha256_digest(blob):
            self._verdict(
                plan.round, refusal_verdict(plan.round, ModelRefused("model_digest_mismatch: not the announced model"))
            )
            return
        global_weights = decode_weights(blob)
        self._link.result_limit_bytes = len(blob) + (1 << 20)
        personal = self._spec.personalization
        kind: Literal["fit", "evaluate", "personalize"] = "evaluate" if plan.evaluate_only else "fit"
        if plan.evaluate_only and personal is not None and personal.fine_tune_epochs:
            kind = "personalize"
        fit_config = plan.fit_config
        if self._privacy is not None and not plan.evaluate_only:
            fit_config, withheld = self._privacy.plan_task(plan)
            if withheld is not None:
                self._verdict(plan.round, refusal_verdict(plan.round, withheld))
                kind = "evaluate"
        self._link.offer(TrainerTask(kind=kind, round=plan.round, fit_config=fit_config), blob)
        try:
            result = self._link.await_result(plan.round, timeout=float(self._spec.round_timeout_seconds))
        except (TimeoutError, MessageError) as error:
            log.error("round %d: no usable trainer result: %s", plan.round, error)
            return
        if result.header.evaluation is not None:
            self._report_evaluation(stub, plan.round, result.header.evaluation)
        if result.header.personalized is not None and kind == "personalize":
            self._report_evaluation(stub, plan.round, result.header.personalized, "personalized")
        if kind != "fit":
            return
        fit = result.header.fit
        records = fit.num_samples if fit is not None else num_samples
        report = fit.model_dump() if fit is not None else {}
        layout = TensorLayout.of(global_weights)
        update = OutgoingUpdate(plan, layout, layout.flatten(global_weights), result.blob, report, records, records)
        del blob, global_weights, result  # the update holds what the steps need; each step frees what it is done with
        self._verdict(plan.round, run_steps(steps, update))

    def _report_evaluation(
        self,
        stub: rpc.AggregatorStub,
        round_number: int,
        evaluation: TrainerEvaluation,
        stage: Literal["global", "personalized"] = "global",
    ) -> None:
        report = EvaluationReport(
            job=self._job_name,
            round=round_number,
            silo=self.config.silo,
            nonce=secrets.token_hex(16),
            loss=evaluation.loss,
            accuracy=evaluation.accuracy,
            num_samples=evaluation.num_samples,
            stage=stage,
        )
        signed = report.canonical_bytes()
        stub.ReportEvaluation(signed_metadata(signed, self._keys.sign(signed)))

    def _verdict(self, round_number: int, verdict: PolicyVerdict) -> None:
        if verdict.accepted:
            log.info("round %d: update accepted (policy %s)", round_number, verdict.policy_revision or "-")
        else:
            log.warning("round %d: update denied: %s", round_number, "; ".join(verdict.reasons))
        if self._on_verdict is not None:
            self._on_verdict(round_number, verdict)
