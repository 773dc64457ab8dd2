"""The sidecar's main loop: the silo's only network path, and the holder of its identity.

Per round it fetches the global model from the aggregator (it dials out; nothing dials
in), hands it to its trainer over the trainer link, checks and clips what comes back,
signs the update metadata with the silo's Ed25519 key, masks (or in plain mode weights)
the payload, streams it, and reports the verdict it gets back. Called by
``fedsilo sidecar`` and, per silo, by ``fedsilo run``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from fedsilo.identity import SiloIdentity, sha256_digest
from fedsilo.privacy import Mechanism, PrivacyViolation, plan_for_silo
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.protocol import (
    EvaluationReport,
    MessageError,
    PolicyVerdict,
    RoundPlan,
    StreamError,
    TensorLayout,
    UpdateMetadata,
    blob_from_chunks,
    decode_weights,
    mechanism_claim,
    pb,
    plan_from_proto,
    rpc,
    update_stream,
    verdict_from_proto,
)

from ._config import SidecarConfig
from ._link import TrainerLinkService
from ._masking import MaskedSubmission
from ._privacy import PrivacyGuard, PrivacyWithheld
from ._update import InvalidUpdate, check_trainer_weights, prepare_update, weighted_plain_payload

log = logging.getLogger("fedsilo.sidecar")

# Values per plain-mode chunk: 256 Ki float32 = 1 MiB.
CHUNK_VALUES = 1 << 18
# Largest model a sidecar will download (guards against a hostile or broken hub).
MODEL_LIMIT_BYTES = 1 << 31


def _channel(target: str, identity: SiloIdentity, aggregator_ca_pem: bytes | None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=aggregator_ca_pem or identity.tls.ca_certificate_pem,
        private_key=identity.tls.private_key_pem,
        certificate_chain=identity.tls.certificate_pem,
    )
    return grpc.secure_channel(
        target,
        credentials,
        options=[("grpc.max_receive_message_length", 4 << 20), ("grpc.max_send_message_length", 4 << 20)],
    )


class Sidecar:
    """One silo's sidecar."""

    def __init__(
        self,
        config: SidecarConfig,
        identity: SiloIdentity,
        link: TrainerLinkService,
        *,
        on_verdict: Callable[[int, PolicyVerdict], None] | None = None,
    ) -> None:
        self.config = config
        self._identity = identity
        self._link = link
        self._on_verdict = on_verdict
        self._job_name = config.job.metadata.name
        self._spec = config.job.spec
        self._privacy: PrivacyGuard | None = None

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
        with _channel(self.config.aggregator, self._identity, self.config.aggregator_ca_pem) as channel:
            stub = rpc.AggregatorStub(channel)
            num_samples = self._hello()
            self._privacy = self._guard(num_samples)
            self._join(stub, num_samples)
            after = 0
            while True:
                plan = self._wait_round(stub, after)
                if plan.finished:
                    self._link.offer(after + 1, {"kind": "finished"}, b"")
                    if plan.failure:
                        log.error("job %s failed: %s", self._job_name, plan.failure)
                        return 1
                    log.info("job %s finished", self._job_name)
                    return 0
                self._round(stub, plan, num_samples)
                after = plan.round

    def _hello(self) -> int:
        self._link.offer(0, {"kind": "hello"}, b"")
        result = self._link.await_result(0, timeout=self.config.connect_timeout * 5)
        num_samples = result.header.get("num_samples")
        if not isinstance(num_samples, int) or num_samples <= 0:
            raise MessageError("the trainer reported no positive num_samples")
        return num_samples

    def _join(self, stub: rpc.AggregatorStub, num_samples: int) -> None:
        deadline = time.monotonic() + self.config.connect_timeout
        while True:
            try:
                stub.Join(
                    pb.JoinRequest(job=self._job_name, silo=self.config.silo, num_samples=num_samples), timeout=10
                )
                return
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _wait_round(self, stub: rpc.AggregatorStub, after: int) -> RoundPlan:
        while True:
            try:
                reply = stub.WaitRound(
                    pb.WaitRoundRequest(job=self._job_name, silo=self.config.silo, after_round=after), timeout=60
                )
                return plan_from_proto(reply)
            except grpc.RpcError as error:
                if error.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                    raise
                if error.code() == grpc.StatusCode.UNAVAILABLE:
                    # The hub went away: after a job finishes its server stops.
                    raise
                continue

    def _round(self, stub: rpc.AggregatorStub, plan: RoundPlan, num_samples: int) -> None:
        ref = pb.RoundRef(job=self._job_name, round=plan.round, silo=self.config.silo)
        blob = blob_from_chunks(stub.GetModel(ref), MODEL_LIMIT_BYTES)
        if sha256_digest(blob) != plan.model_digest:
            log.error("round %d: the model received differs from the announced digest; skipping", plan.round)
            return
        global_weights = decode_weights(blob)
        layout = TensorLayout.of(global_weights)
        self._link.result_limit_bytes = len(blob) + (1 << 20)
        kind = "evaluate" if plan.evaluate_only else "fit"
        fit_config = plan.fit_config
        if self._privacy is not None and not plan.evaluate_only:
            try:
                # Before any training: a round the budget cannot pay for is not run at all.
                self._privacy.check_budget(plan.round, self._privacy.plan.planned_event())
            except PrivacyWithheld as error:
                self._withhold(plan.round, error.reason)
                kind = "evaluate"
            fit_config = self._privacy.fit_config(fit_config)
        self._link.offer(plan.round, {"kind": kind, "fit_config": fit_config}, blob)
        try:
            result = self._link.await_result(plan.round, timeout=float(self._spec.round_timeout_seconds))
        except (TimeoutError, MessageError) as error:
            log.error("round %d: no usable trainer result: %s", plan.round, error)
            return
        self._report_evaluation(stub, plan.round, result.header.get("evaluation"))
        if kind == "evaluate":
            return
        try:
            local = check_trainer_weights(layout, decode_weights(result.blob))
        except (InvalidUpdate, StreamError) as error:
            reason = error.reason if isinstance(error, InvalidUpdate) else f"payload_invalid: {error}"
            log.error("round %d: rejected the trainer's update: %s", plan.round, reason)
            self._verdict(plan.round, PolicyVerdict(False, (f"rejected by sidecar: {reason}",)))
            return
        fit = result.header.get("fit") or {}
        records = weight = int(fit.get("num_samples", num_samples))
        prepared = prepare_update(
            layout.flatten(global_weights), local, self._spec.policy.norm_cap, self._spec.aggregation.clip_range
        )
        update, event = prepared.delta, None
        if self._privacy is not None:
            try:
                event = self._privacy.plan.round_event(fit)
                self._privacy.check_budget(plan.round, event)
            except (PrivacyViolation, PrivacyWithheld) as error:
                self._withhold(plan.round, error.reason)
                return
            update = self._privacy.noised(update, self._spec.aggregation.clip_range)
            if self._privacy.uniform_weights:
                weight = 1
        self._submit(stub, plan, update, _Claims(prepared.l2_norm, records, weight), event)

    def _submit(
        self,
        stub: rpc.AggregatorStub,
        plan: RoundPlan,
        update: npt.NDArray[np.float32],
        claims: _Claims,
        event: Mechanism | None,
    ) -> None:
        """Sign, charge (with DP), mask or weight, and send one update; report the verdict."""
        chunks: Iterator[tuple[int, npt.NDArray[np.generic]]]
        if plan.aggregation == "masked":
            submission = MaskedSubmission(plan, self.config, self._identity, update, claims.weight)
            submission.setup(stub)
            dtype, chunks, digest = "uint32", submission.chunks(), submission.digest
        else:
            payload = weighted_plain_payload(update, claims.weight)
            dtype, chunks, digest = "float32", _plain_chunks(payload), sha256_digest(payload.tobytes())
        epsilon_round = None
        if self._privacy is not None and event is not None:
            try:
                charge = self._privacy.charge(plan.round, event, digest)
            except PrivacyWithheld as error:
                self._withhold(plan.round, error.reason)
                return
            epsilon_round = self._privacy.plan.epsilon_of(event)
            log.info("round %d: charged epsilon %.4g (job total %.4g)", plan.round, epsilon_round, charge.epsilon_job)
        metadata = UpdateMetadata(
            job=self._job_name,
            round=plan.round,
            silo=self.config.silo,
            nonce=secrets.token_hex(16),
            l2_norm=claims.l2_norm,
            num_samples=claims.records,
            vector_length=plan.vector_length,
            dtype=dtype,
            payload_digest=digest,
            epsilon_round=epsilon_round,
            mechanism=mechanism_claim(event.to_json()) if event is not None else None,
        )
        signed = metadata.canonical_bytes()
        signature = self._identity.signing_key.sign(signed)
        verdict = verdict_from_proto(stub.SubmitUpdate(update_stream(signed, signature, chunks, dtype)))
        self._verdict(plan.round, verdict)
        if verdict.accepted and self._privacy is not None and event is not None:
            self._privacy.acknowledge(plan.round)
        if plan.aggregation == "masked":
            submission.unmask(stub)

    def _withhold(self, round_number: int, reason: str) -> None:
        log.warning("round %d: the sidecar withholds this silo's update: %s", round_number, reason)
        self._verdict(round_number, PolicyVerdict(False, (f"withheld by sidecar: {reason}",)))

    def _report_evaluation(self, stub: rpc.AggregatorStub, round_number: int, evaluation: Any) -> None:
        if not isinstance(evaluation, dict):
            return
        try:
            report = EvaluationReport(
                job=self._job_name,
                round=round_number,
                silo=self.config.silo,
                nonce=secrets.token_hex(16),
                loss=float(evaluation["loss"]),
                accuracy=float(evaluation["accuracy"]),
                num_samples=int(evaluation["num_samples"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            log.error("round %d: the trainer's evaluation is malformed: %s", round_number, error)
            return
        if not (np.isfinite(report.loss) and np.isfinite(report.accuracy)):
            log.error("round %d: the trainer's evaluation is not finite", round_number)
            return
        signed = report.canonical_bytes()
        stub.ReportEvaluation(
            pb.SignedMetadata(metadata_json=signed, signature=self._identity.signing_key.sign(signed))
        )

    def _verdict(self, round_number: int, verdict: PolicyVerdict) -> None:
        if verdict.accepted:
            log.info("round %d: update accepted (policy %s)", round_number, verdict.policy_revision or "-")
        else:
            log.warning("round %d: update denied: %s", round_number, "; ".join(verdict.reasons))
        if self._on_verdict is not None:
            self._on_verdict(round_number, verdict)


@dataclass(frozen=True)
class _Claims:
    """What the silo signs about its update besides the payload."""

    # The clipped update's norm, before any silo-level noise: the sensitivity the noise covers.
    l2_norm: float
    # The records behind the update (what the policy's minimum reads).
    records: int
    # The update's weight in the mean: the records, or 1 in silo-level DP (DP-FedAvg).
    weight: int


def _plain_chunks(
    payload: np.ndarray[Any, np.dtype[np.float32]],
) -> Iterator[tuple[int, np.ndarray[Any, np.dtype[np.float32]]]]:
    for offset in range(0, payload.size, CHUNK_VALUES):
        yield offset, payload[offset : offset + CHUNK_VALUES]
