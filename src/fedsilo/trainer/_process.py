"""The trainer process: loads its silo's data, then serves its sidecar's tasks until the job ends.

It never opens a network connection: its only peer is its own sidecar, over a Unix socket
locally (``unix:PATH``) or the silo's pod network in a cluster, and it holds no secret.
Called by ``fedsilo trainer``; ``fedsilo run`` starts one per silo, inside its own network
namespace where the OS allows it.
"""

from __future__ import annotations

import logging
import math
import os
import time
import traceback
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import grpc
from pydantic import ValidationError

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import DataError, FittedPreprocessing, SiloData, load_raw_silo_data, load_silo_data
from fedsilo.protocol import (
    LINK_TOKEN_ENV,
    LINK_TOKEN_METADATA,
    MessageError,
    StatisticsAsk,
    StatisticsTotals,
    StreamError,
    TrainerEvaluation,
    TrainerFitReport,
    TrainerReply,
    TrainerTask,
    decode_weights,
    encode_totals,
    encode_weights,
    follow_parent,
    frames_in,
    frames_out,
    rpc,
    task_request,
)
from fedsilo.statistics.totals import Columns, RecordTotals

from ._client import DpSgdConfig, EvaluateConfig, EvaluateResult, FitConfig, TrainerClient
from ._factory import build_client
from ._personal import PersonalizedClient, fine_tune
from ._torch_client import import_optimizers

log = logging.getLogger("fedsilo.trainer")

# The largest task the trainer accepts (a model plus framing).
TASK_LIMIT_BYTES = 1 << 31
# How long the link may stay unreachable before the trainer decides its sidecar is gone and
# exits; a sidecar that has not answered yet (still starting on a busy machine) gets longer.
LINK_LOST_SECONDS = 60.0
FIRST_CONTACT_SECONDS = 600.0

Metadata = tuple[tuple[str, str], ...]


def _channel(target: str, ca_certificate_pem: bytes | None, silo: str) -> grpc.Channel:
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", 4 << 20),
        ("grpc.max_send_message_length", 4 << 20),
    ]
    if target.startswith("unix:"):
        return grpc.insecure_channel(target, options=options)
    if ca_certificate_pem is None:
        raise ValueError("a TCP sidecar address needs the silo CA certificate (--sidecar-ca)")
    # The sidecar is dialled by address; its certificate names the silo, as the silo's CA issued it.
    options.append(("grpc.ssl_target_name_override", silo))
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(ca_certificate_pem), options=options)


class _Link:
    """The channel to the sidecar, dialled again with the silo's CAs as its ``--sidecar-ca`` file holds them now.

    In a cluster that file is the identity's public ConfigMap, which the silo operator rewrites
    while it rotates the silo's CA (both CAs, then the new one alone) and the kubelet updates in
    place. A connection keeps the CAs of its handshake, so once the sidecar serves a certificate
    from the new CA, a trainer that has to reconnect (its sidecar restarted) would be refused
    until it gave up. Instead, while the link is unreachable, it looks at the file and dials
    again when the CAs there changed.
    """

    def __init__(self, target: str, silo: str, ca_file: Path | None) -> None:
        self._target, self._silo, self._ca_file = target, silo, ca_file
        self._ca = ca_file.read_bytes() if ca_file is not None else None
        self._channel = _channel(target, self._ca, silo)
        self.stub = rpc.TrainerLinkStub(self._channel)

    def redial_if_cas_changed(self) -> None:
        """Dial the sidecar again if the CA file now holds other CAs (an empty or unreadable one is not taken)."""
        if self._ca_file is None:
            return
        try:
            ca = self._ca_file.read_bytes()
        except OSError:
            return
        if not ca.strip() or ca == self._ca:
            return
        log.warning("the silo's CAs in %s changed: dialling the sidecar again with them", self._ca_file)
        old, self._ca = self._channel, ca
        self._channel = _channel(self._target, ca, self._silo)
        self.stub = rpc.TrainerLinkStub(self._channel)
        old.close()

    def close(self) -> None:
        self._channel.close()


def _fit_config(document: dict[str, Any]) -> FitConfig:
    known = {f.name for f in fields(FitConfig)}
    unknown = sorted(set(document) - known)
    if unknown:
        raise ValueError(f"fit configuration has unknown fields {unknown}")
    dp = document.get("dp")
    return FitConfig(**{**document, "dp": DpSgdConfig(**dp) if isinstance(dp, dict) else None})


class SidecarGone(Exception):
    """The sidecar has not answered for ``LINK_LOST_SECONDS``: the silo is over, and so is its trainer."""


def _task(link: _Link, silo: str, next_round: int, metadata: Metadata, patience: float) -> tuple[TrainerTask, bytes]:
    """The next task from the sidecar; a malformed one is refused (logged) and asked for again.

    ``SidecarGone`` when the link stays unreachable for ``patience`` seconds.
    """
    unreachable_since: float | None = None
    while True:
        try:
            return frames_in(
                link.stub.NextTask(task_request(silo, next_round), timeout=90, metadata=metadata),
                TASK_LIMIT_BYTES,
                TrainerTask,
            )
        except (MessageError, StreamError) as error:
            log.error("refused a malformed task from the sidecar: %s", error)
            time.sleep(1.0)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                unreachable_since = None
                continue
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            now = time.monotonic()
            unreachable_since = unreachable_since or now
            if now - unreachable_since > patience:
                raise SidecarGone(f"the sidecar has not answered for {patience:.0f}s") from error
            link.redial_if_cas_changed()
            time.sleep(1.0)


def _evaluation(result: EvaluateResult) -> TrainerEvaluation | None:
    """The score as the link carries it; None (logged) when there is none or the model reported nonsense."""
    if not math.isfinite(result.loss):
        return None
    try:
        return TrainerEvaluation(loss=result.loss, accuracy=result.accuracy, num_samples=result.num_samples)
    except ValidationError as error:
        log.error("the model's evaluation is out of range and is not reported: %s", error)
        return None


def _serve(
    client: TrainerClient, task: TrainerTask, blob: bytes, num_test: int, spec: FederatedJobSpec
) -> tuple[TrainerReply, bytes]:
    """Run one fit, evaluate or personalize task; the reply header and the local model bytes (fit only)."""
    client.set_weights(decode_weights(blob))
    evaluation = _evaluation(client.evaluate(EvaluateConfig(round=task.round))) if num_test else None
    if task.kind == "personalize":
        # The fine-tuned model stays here: only its score goes back.
        fine_tune(client, spec)
        personalized = _evaluation(client.evaluate(EvaluateConfig(round=task.round))) if num_test else None
        return TrainerReply(round=task.round, evaluation=evaluation, personalized=personalized), b""
    if task.kind != "fit":
        return TrainerReply(round=task.round, evaluation=evaluation), b""
    result = client.fit(_fit_config(task.fit_config))
    fit = TrainerFitReport(**{k: v for k, v in asdict(result).items() if k != "metrics"}, metrics=dict(result.metrics))
    return TrainerReply(round=task.round, evaluation=evaluation, fit=fit), encode_weights(client.get_weights())


class _Silo:
    """The trainer's silo: raw records for the statistics phase, then the transformed data and the model.

    The model is built at its first use (hello), after a ``preprocess`` task has handed
    over the fitted transform of a job with federated preprocessing: its width may depend
    on it (one-hot columns), and its data must be transformed as every other silo's is.
    """

    def __init__(
        self, spec: FederatedJobSpec, silo: str, data_path: str | None, fitted: FittedPreprocessing | None
    ) -> None:
        self.spec = spec
        self.silo = silo
        self._index = spec.silos.index(silo)
        self._data_path = data_path
        self._fitted = fitted
        self._raw: RecordTotals | None = None
        self._ready: tuple[SiloData, TrainerClient] | None = None

    @property
    def raw(self) -> RecordTotals:
        """The silo's training records before any transform, as totals (loaded once)."""
        if self._raw is None:
            data = load_raw_silo_data(self.spec, self._index, len(self.spec.silos), self._data_path)
            self._raw = RecordTotals(data.train_x)
        return self._raw

    def statistics(self, ask: StatisticsAsk) -> tuple[TrainerReply, bytes]:
        """The answer to a statistics ask: the records' shape, or a pass's totals (never a record)."""
        raw = self.raw
        if ask.step == "describe":
            return TrainerReply(round=0, totals=StatisticsTotals(features=raw.features, records=raw.records)), b""
        outside = [c for c in (*ask.numeric, *ask.categorical) if c >= raw.features]
        if outside:
            raise DataError(f"the statistics ask names column {outside[0]}, but records have {raw.features} features")
        columns = Columns(ask.numeric, ask.categorical, ask.codes, ask.bins, ask.private)
        if ask.step == "moments":
            vector = raw.moments(columns)
        else:
            vector = raw.histogram(columns, {column: (low, high) for column, low, high in ask.ranges})
        totals = StatisticsTotals(features=raw.features, records=raw.records, values=len(vector))
        return TrainerReply(round=0, totals=totals), encode_totals(vector)

    def preprocess(self, blob: bytes) -> None:
        """Take the fitted transform the hub released (read strictly); the model is built with it."""
        fitted = FittedPreprocessing.parse(blob)
        if self._ready is not None and (self._fitted is None or self._fitted.digest() != fitted.digest()):
            raise MessageError("preprocess: the model is already built with another transform; it comes before hello")
        self._fitted = fitted
        log.info("trainer for %s takes the fitted preprocessing %s", self.silo, self._fitted.digest())

    @property
    def ready(self) -> tuple[SiloData, TrainerClient]:
        """The silo's data (transformed as the job says) and its model, built at first use."""
        if self._ready is None:
            data = load_silo_data(self.spec, self._index, len(self.spec.silos), self._data_path, self._fitted)
            client = build_client(self.spec, data)
            import_optimizers()
            log.info(
                "trainer for %s ready: %d training and %d test records", self.silo, len(data.train_y), len(data.test_y)
            )
            self._ready = (data, client)
        return self._ready


def _answer(silo: _Silo, task: TrainerTask, blob: bytes) -> tuple[TrainerReply, bytes]:
    """The reply to one task; a failure is reported to the sidecar (which skips the round or ends the phase)."""
    try:
        if task.kind == "statistics":
            assert task.statistics is not None  # the message's own validator
            return silo.statistics(task.statistics)
        if task.kind == "preprocess":
            silo.preprocess(blob)
            return TrainerReply(round=task.round), b""
        data, client = silo.ready
        if task.kind == "hello":
            private = sorted(client.private) if isinstance(client, PersonalizedClient) else []
            return TrainerReply(round=task.round, num_samples=len(data.train_y), private_parameters=tuple(private)), b""
        return _serve(client, task, blob, len(data.test_y), silo.spec)
    except Exception as error:  # reported to the sidecar, which skips the round
        log.error("task %s of round %d failed: %s", task.kind, task.round, traceback.format_exc())
        return TrainerReply(round=task.round, error=f"{type(error).__name__}: {error}"[:4096]), b""


def run_trainer(
    spec: FederatedJobSpec,
    silo: str,
    sidecar: str,
    *,
    data_path: str | None = None,
    sidecar_ca: Path | None = None,
    preprocessing: Path | None = None,
) -> int:
    """Serve tasks until the job ends; 0 on a normal end, 1 when the sidecar is gone.

    ``preprocessing`` is the job's fitted transform when it is already known (read strictly);
    otherwise a job with federated preprocessing gets it from its sidecar after the
    statistics phase, in which this process computes its silo's totals. ``sidecar_ca`` holds
    the silo's CAs that a TCP sidecar's certificate must chain to (read again as it changes).
    """
    follow_parent()
    token = os.environ.get(LINK_TOKEN_ENV)
    metadata: Metadata = ((LINK_TOKEN_METADATA, token),) if token else ()
    state = _Silo(spec, silo, data_path, FittedPreprocessing.read(preprocessing) if preprocessing is not None else None)
    if not (spec.data.preprocessing is not None and spec.data.preprocessing.federated and preprocessing is None):
        state.ready  # noqa: B018 (a bad data set or model fails here, at start, as before)
    link = _Link(sidecar, silo, sidecar_ca)
    try:
        next_round = 0
        while True:
            try:
                patience = LINK_LOST_SECONDS if next_round else FIRST_CONTACT_SECONDS
                task, blob = _task(link, silo, next_round, metadata, patience)
            except SidecarGone as gone:
                log.error("%s; exiting", gone)
                return 1
            if task.kind == "finished":
                return 0
            reply, out = _answer(state, task, blob)
            try:
                ack = link.stub.Complete(frames_out(reply, out), metadata=metadata)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                # The sidecar went while it took the result (stopping, or restarted): ask it for a task
                # again from the same round, as for any lost contact; a sidecar back up sends what it needs.
                log.warning(
                    "the sidecar did not take the %s result of round %d: %s", task.kind, task.round, error.details()
                )
                continue
            if not ack.ok:
                log.error("sidecar refused the %s result of round %d: %s", task.kind, task.round, ack.message)
            if task.kind not in ("statistics", "preprocess"):
                # The statistics phase's tasks all come at round 0, before hello.
                next_round = task.round + 1
    finally:
        link.close()
