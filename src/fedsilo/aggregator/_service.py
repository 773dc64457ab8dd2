"""The aggregator's gRPC service: mutual TLS only, each call bound to its certificate's silo.

Handlers are thin: they establish who is calling (the client certificate's common name,
which must be an enrolled silo, match the silo the request names, and, where each silo
has its own CA, have been issued by one of that silo's CAs, which ``SiloTrust`` follows as
the operator rotates them: see docs/trust.md), convert messages
at the edge through ``fedsilo.protocol``, and hand over to ``JobCoordinator``. Each update
stream has its own deadline: a silo that stalls its upload is cut off, not waited for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from typing import cast

import grpc
import numpy as np
import numpy.typing as npt

from fedsilo.api import RateLimitSpec
from fedsilo.identity import CertificateExpired, IssuerMismatch, TlsCredentials, check_certificate_current
from fedsilo.policy import Reason, Refusal
from fedsilo.protocol import (
    MessageError,
    PolicyVerdict,
    StreamError,
    blob_to_chunks,
    pb,
    plan_to_proto,
    rpc,
    share_upload_from_proto,
    update_chunk_from_proto,
    update_metadata_from_proto,
    verdict_to_proto,
)

from ._coordinator import JobCoordinator
from ._limits import RateLimited, RateLimits
from ._phases import PhaseClosed
from ._trust import IssuerRetired, SiloTrust

log = logging.getLogger("fedsilo.aggregator")

# Room for the largest chunk (1 MiB of data) plus framing.
MAX_MESSAGE_BYTES = 4 << 20
#: The most each connection's socket reads at once, and so the read buffer it keeps between reads
#: (:func:`read_buffer_options`).
READ_BUFFER_BYTES = 64 << 10
#: The data each message of a download carries (GetModel, GetEncryptedSum); uploads keep 1 MiB.
#: Until its transport has written them, gRPC holds about four messages of each download in
#: flight, and every silo downloads the model at once: at 1 MiB that was 4 MiB of the hub's
#: memory per silo downloading, at 256 KiB about 1 MiB, for a tenth to a third more of the hub's
#: CPU per byte sent (benchmarks/bench_model_download.py, docs/big-models.md). The hub chooses it,
#: so a silo that reads slowly, or asks for a large window, cannot make it hold more.
DOWNLOAD_MESSAGE_BYTES = 256 << 10
# A silo re-asks for the next round after this long, so a cancelled call never hangs.
WAIT_ROUND_SECONDS = 30.0
# The status a refused Leave gets, by reason (anything else: INVALID_ARGUMENT, a notice that does not parse).
LEAVE_REFUSALS: Mapping[Reason, grpc.StatusCode] = {
    Reason.SIGNATURE_INVALID: grpc.StatusCode.PERMISSION_DENIED,
    Reason.IDENTITY_MISMATCH: grpc.StatusCode.PERMISSION_DENIED,
    Reason.SILO_NOT_ENROLLED: grpc.StatusCode.PERMISSION_DENIED,
    Reason.WRONG_JOB: grpc.StatusCode.NOT_FOUND,
    Reason.STALE_ROUND: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.NO_OPEN_ROUND: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.NOT_A_SURVIVOR: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.NONCE_REPLAYED: grpc.StatusCode.ALREADY_EXISTS,
}


def _deadlined(
    messages: Iterator[pb.UpdateChunk], context: grpc.ServicerContext, seconds: float
) -> Iterator[tuple[int, str, npt.NDArray[np.generic]]]:
    """The stream's chunks; after ``seconds`` the call is cancelled and the stream ends in a ``StreamError``."""
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        context.cancel()  # type: ignore[no-untyped-call]  # grpc stubs leave it untyped

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        for message in messages:
            yield update_chunk_from_proto(message)
    except grpc.RpcError:
        if not expired.is_set():
            raise
    finally:
        timer.cancel()
    if expired.is_set():
        raise StreamError(f"the upload did not finish within its deadline of {seconds:g}s")


class Callers:
    """Who is calling: the enrolled silo behind the TLS session, within its rate limits.

    One check for every service the aggregator serves (the rounds', ``AggregatorService``,
    and the statistics phase's, ``_statistics.StatisticsService``).
    """

    def __init__(self, enrolled: Callable[[str], bool], limits: RateLimits, trust: SiloTrust | None) -> None:
        self._enrolled = enrolled
        self._limits = limits
        # Each silo's own CAs, which alone may issue its certificates; None: one CA for all.
        self._trust = trust

    def __call__(self, context: grpc.ServicerContext, claimed: str, *, upload: bool = False) -> str:
        """The enrolled silo behind this TLS session, within its rate limits; aborts on a mismatch or a flood."""
        # gRPC puts the verified client certificate's common names here (a list of bytes).
        names = cast(list[bytes], context.auth_context().get("x509_common_name", []))
        silo = names[0].decode() if names else ""
        if not self._enrolled(silo):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"certificate {silo!r} is not an enrolled silo")
        peer = cast(list[bytes], context.auth_context().get("x509_pem_cert", []))
        try:
            # TLS checks expiry only at the handshake: a connection outliving its short-lived
            # certificate is refused here, on every call, until the sidecar dials with the renewed one.
            if peer:
                check_certificate_current(peer[0])
        except CertificateExpired as error:
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"the client certificate of {silo!r} {error}: its sidecar must dial with the renewed certificate "
                "(renewed at 2/3 of its life; docs/operations.md)",
            )
        if self._trust is not None:
            try:
                if not peer:
                    raise IssuerMismatch("without a certificate")
                self._trust.check(silo, peer[0])
            except IssuerRetired as error:
                context.abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    f"the client certificate of {silo!r} was {error}: its sidecar must dial with a certificate "
                    "from the silo's current CA (its operator issues one at the next renewal; docs/operations.md)",
                )
            except IssuerMismatch as error:
                context.abort(
                    grpc.StatusCode.PERMISSION_DENIED, f"certificate for {silo!r} is {error}: another CA minted it"
                )
        if claimed and claimed != silo:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"certificate is for {silo}, request names {claimed}")
        # Counted only now that the caller is proven to be ``silo``: no one spends another silo's budget.
        try:
            self._limits.enter(silo, upload=upload)
        except RateLimited as limited:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(limited))
        if not context.add_callback(lambda: self._limits.leave(silo, upload=upload)):
            self._limits.leave(silo, upload=upload)  # the call had already ended
        return silo


class AggregatorService(rpc.AggregatorServicer):
    """Maps RPCs to a ``JobCoordinator``."""

    def __init__(self, coordinator: JobCoordinator, trust: SiloTrust | None = None) -> None:
        self._coordinator = coordinator
        self._caller = Callers(
            coordinator.enrolled,
            RateLimits(coordinator.spec.rate_limits, coordinator.spec.silos, coordinator.refuse_call),
            trust,
        )
        # Every silo downloads the same model: cut it into messages and serialize them once per
        # round, not per silo (a download in flight then holds no copy of its own on the heap).
        self._model_chunks: tuple[bytes, list[bytes]] | None = None
        self._chunk_lock = threading.Lock()

    def _check_job(self, context: grpc.ServicerContext, job: str) -> None:
        if job != self._coordinator.job.metadata.name:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"this aggregator serves job {self._coordinator.job.metadata.name!r}, not {job!r}",
            )

    def Join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinReply:
        silo = self._caller(context, request.silo)
        self._check_job(context, request.job)
        try:
            self._coordinator.join(silo, request.num_samples)
        except ValueError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        return pb.JoinReply(total_rounds=self._coordinator.spec.rounds)

    def WaitRound(self, request: pb.WaitRoundRequest, context: grpc.ServicerContext) -> pb.RoundPlan:
        silo = self._caller(context, request.silo)
        self._check_job(context, request.job)
        plan = self._coordinator.wait_round(silo, request.after_round, WAIT_ROUND_SECONDS)
        if plan is None:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no round opened yet; ask again")
        return plan_to_proto(plan)

    def GetModel(self, request: pb.RoundRef, context: grpc.ServicerContext) -> Iterator[bytes]:
        """The round's model as serialized ``BytesChunk`` messages (``serve`` sends them as they are)."""
        silo = self._caller(context, request.silo)
        try:
            blob = self._coordinator.model_blob(silo, request.round)
        except PhaseClosed as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        with self._chunk_lock:
            if self._model_chunks is None or self._model_chunks[0] is not blob:
                self._model_chunks = None  # the last round's messages go before this round's are made
                self._model_chunks = (
                    blob,
                    [chunk.SerializeToString() for chunk in blob_to_chunks(blob, DOWNLOAD_MESSAGE_BYTES)],
                )
            chunks = self._model_chunks[1]
        yield from chunks

    def _setup(self, step: str, request: pb.SecAggEnvelope, context: grpc.ServicerContext) -> pb.SecAggEnvelope:
        silo = self._caller(context, request.ref.silo)
        try:
            reply = self._coordinator.setup_step(step, silo, request.ref.round, request.body)
        except PhaseClosed as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        except ValueError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{step}: {error}")
        return pb.SecAggEnvelope(ref=request.ref, body=reply)

    def AdvertiseKeys(self, request: pb.SecAggEnvelope, context: grpc.ServicerContext) -> pb.SecAggEnvelope:
        return self._setup("advertise", request, context)

    def ShareKeys(self, request: pb.SecAggEnvelope, context: grpc.ServicerContext) -> pb.SecAggEnvelope:
        return self._setup("share", request, context)

    def ReserveUpload(self, request: pb.RoundRef, context: grpc.ServicerContext) -> pb.UploadGrant:
        silo = self._caller(context, request.silo)
        self._check_job(context, request.job)
        try:
            hold_seconds = self._coordinator.reserve_upload(silo, request.round)
        except PhaseClosed as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        except Refusal as refused:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refused.text)
        if not context.is_active():  # the silo gave up waiting: its slot goes to the next one now
            self._coordinator.withdraw_reservation(silo)
        return pb.UploadGrant(hold_seconds=hold_seconds)

    def SubmitUpdate(self, request_iterator: Iterator[pb.UpdateChunk], context: grpc.ServicerContext) -> pb.Decision:
        silo = self._caller(context, "", upload=True)
        try:
            metadata_json, signature = update_metadata_from_proto(next(request_iterator))
        except (StopIteration, MessageError) as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"update stream: {error or 'empty'}")
        chunks = _deadlined(request_iterator, context, self._coordinator.upload_deadline_seconds())
        try:
            verdict = self._coordinator.submit_update(silo, metadata_json, signature, chunks)
        except (MessageError, StreamError) as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"update stream: {error}")
        log.info(
            "round update from %s: %s %s",
            silo,
            "accepted" if verdict.accepted else "denied",
            "; ".join(verdict.reasons),
        )
        return verdict_to_proto(verdict)

    def GetUnmaskRequest(self, request: pb.RoundRef, context: grpc.ServicerContext) -> pb.SecAggEnvelope:
        silo = self._caller(context, request.silo)
        try:
            body = self._coordinator.unmask_request(silo, request.round)
        except PhaseClosed as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        return pb.SecAggEnvelope(ref=request, body=body)

    def Unmask(self, request: pb.SecAggEnvelope, context: grpc.ServicerContext) -> pb.Decision:
        silo = self._caller(context, request.ref.silo)
        try:
            verdict = self._coordinator.unmask(silo, request.ref.round, request.body)
        except PhaseClosed as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        return verdict_to_proto(verdict)

    def GetEncryptedSum(self, request: pb.RoundRef, context: grpc.ServicerContext) -> Iterator[pb.BytesChunk]:
        """Homomorphic mode: the round's encrypted sum, streamed to a silo of its key (the unmask step's request)."""
        silo = self._caller(context, request.silo)
        try:
            body = self._coordinator.unmask_request(silo, request.round)
        except PhaseClosed as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        yield from blob_to_chunks(body, DOWNLOAD_MESSAGE_BYTES)

    def SubmitDecryptionShare(
        self, request_iterator: Iterator[pb.ShareUpload], context: grpc.ServicerContext
    ) -> pb.Decision:
        """Homomorphic mode: a silo's signed decryption share, bounded, posted to the unmask step."""
        silo = self._caller(context, "")
        try:
            ref, body = share_upload_from_proto(request_iterator, self._coordinator.decryption_share_limit())
        except (MessageError, StreamError) as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"decryption share stream: {error}")
        if ref.silo != silo:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"certificate is for {silo}, request names {ref.silo}")
        try:
            verdict = self._coordinator.unmask(silo, ref.round, body)
        except PhaseClosed as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        return verdict_to_proto(verdict)

    def ReportEvaluation(self, request: pb.SignedMetadata, context: grpc.ServicerContext) -> pb.Decision:
        silo = self._caller(context, "")
        verdict = self._coordinator.report_evaluation(silo, request.metadata_json, request.signature)
        return verdict_to_proto(verdict)

    def Leave(self, request: pb.SignedMetadata, context: grpc.ServicerContext) -> pb.Decision:
        """A stopping silo's signed leave; refused with the status its reason maps to (``LEAVE_REFUSALS``)."""
        silo = self._caller(context, "")
        try:
            self._coordinator.leave(silo, request.metadata_json, request.signature)
        except Refusal as refusal:
            log.warning("leave from %s refused: %s", silo, refusal.text)
            context.abort(LEAVE_REFUSALS.get(refusal.reason, grpc.StatusCode.INVALID_ARGUMENT), refusal.text)
        return verdict_to_proto(PolicyVerdict(True))


def start_server(
    coordinator: JobCoordinator,
    listen: str,
    credentials: TlsCredentials,
    *,
    workers: int | None = None,
    trust: SiloTrust | None = None,
    read_buffer_bytes: int = READ_BUFFER_BYTES,
) -> tuple[grpc.Server, int]:
    """Start the mTLS gRPC server; returns it and the bound port. Never listens in plaintext.

    ``trust`` holds each silo's own CAs: every call's certificate must be issued by a CA of
    the silo it names, and the TLS handshake lets in the CAs it trusts at that moment (see
    :func:`serve`). Without it every CA of ``credentials`` may issue any silo's certificate,
    which is only safe when one party holds the one CA (``fedsilo run``). ``read_buffer_bytes``
    is for benchmarks that measure the hub as it was (:func:`serve`).
    """
    # Every silo may hold its concurrentCalls open (a wait in a step holds one), so size the pool to
    # the job: one flooding silo then cannot take the workers the others need.
    limits = coordinator.spec.rate_limits
    size = workers or limits.concurrent_calls * len(coordinator.spec.silos) + 8
    service = AggregatorService(coordinator, trust)
    return serve(
        service,
        listen,
        credentials,
        workers=size,
        trust=trust,
        stream_window_bytes=limits.stream_window_kib << 10,
        read_buffer_bytes=read_buffer_bytes,
    )


#: How much of a call's request stream gRPC core may receive before its handler reads it, unless
#: the job says otherwise: ``spec.rateLimits.streamWindowKiB``'s default.
STREAM_WINDOW_BYTES = cast(int, RateLimitSpec.model_fields["stream_window_kib"].default) << 10


def receive_window_options(window_bytes: int) -> tuple[tuple[str, int], ...]:
    """The server options that hold each stream's receive window at ``window_bytes``; none for 0 (gRPC's sizing).

    By default BDP probing raises every stream's window to max(4 MiB, 2 x BDP) while gRPC's
    memory quota sees no pressure, so each upload waiting for one of the hub's few upload slots
    had up to 4 MiB of its payload buffered in the hub. With probing off, a stream's window
    stays at this size until its handler asks for a message; a reading handler still lets in the
    rest of the message it waits for, so an upload moves about one window (at least its 1 MiB
    chunk) per round trip (benchmarks/bench_receive_window.py). Sidecars reserve their upload
    slot before they stream (``ReserveUpload``), so a waiting upload has sent nothing: the window
    costs the hub memory for the uploads it reads and for a silo that streams without reserving,
    not for every waiting silo (docs/big-models.md, benchmarks/bench_upload_reservations.py).
    """
    if window_bytes == 0:
        return ()
    return (("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", window_bytes))


def read_buffer_options(buffer_bytes: int) -> tuple[tuple[str, int], ...]:
    """The server option that caps each connection's read buffer at ``buffer_bytes``; none for 0 (gRPC's sizing).

    gRPC core sizes a connection's next read from its last ones: a read that fills most of its
    buffer doubles the buffer, and the buffer is kept, allocated, while the connection waits for
    its next bytes, shrinking by 1% a read. A silo's upload, 1 MiB messages that the hub reads as
    fast as loopback or a LAN delivers them, grew its connection's buffer to 0.6 to 1.3 MiB, and
    every silo's connection kept it until it closed: at the end of a 50-silo round, 30 MiB of the
    hub's heap was empty read buffers (``heaptrack``; docs/big-models.md). Capped, a connection
    reads the same bytes in more, smaller reads; the TCP socket still queues what arrives meanwhile.
    The cap is the hub's, not the job's: it bounds what every connected silo costs the hub whatever
    window the job chose (what it costs an upload's speed: benchmarks/bench_receive_window.py).
    """
    if buffer_bytes == 0:
        return ()
    return (("grpc.experimental.tcp_max_read_buffer_size", buffer_bytes),)


def serve(
    service: rpc.AggregatorServicer,
    listen: str,
    credentials: TlsCredentials,
    *,
    workers: int,
    trust: SiloTrust | None = None,
    stream_window_bytes: int = STREAM_WINDOW_BYTES,
    read_buffer_bytes: int = READ_BUFFER_BYTES,
) -> tuple[grpc.Server, int]:
    """Serve ``service`` over mutual TLS on ``listen`` with ``workers`` threads; the server and its bound port.

    With ``trust`` the client CAs the handshake accepts are ``trust``'s at each new connection
    (a silo's rotated CA is let in without a restart), else ``credentials``' CA. Each stream's
    receive window is ``stream_window_bytes`` (:func:`receive_window_options`), each connection's
    read buffer at most ``read_buffer_bytes`` (:func:`read_buffer_options`); 0 for either: gRPC's
    own sizing.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aggregator"),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            *receive_window_options(stream_window_bytes),
            *read_buffer_options(read_buffer_bytes),
        ],
    )
    rpc.add_AggregatorServicer_to_server(service, server)
    if isinstance(service, AggregatorService):
        # GetModel yields messages serialized once per round: registered again, over the generated
        # handler, with a serializer that sends those bytes as they are.
        server.add_registered_method_handlers(  # type: ignore[attr-defined]  # grpc's stubs lack it (grpcio >= 1.63)
            "fedsilo.v1.Aggregator",
            {
                "GetModel": grpc.unary_stream_rpc_method_handler(
                    service.GetModel, request_deserializer=pb.RoundRef.FromString, response_serializer=_as_sent
                )
            },
        )
    if trust is None:
        server_credentials = grpc.ssl_server_credentials(
            [(credentials.private_key_pem, credentials.certificate_pem)],
            root_certificates=credentials.ca_certificate_pem,
            require_client_auth=True,
        )
    else:
        server_credentials = _following_client_cas(credentials, trust)
    port = server.add_secure_port(listen, server_credentials)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    server.start()
    return server, port


def _following_client_cas(credentials: TlsCredentials, trust: SiloTrust) -> grpc.ServerCredentials:
    """Server credentials whose trusted client CAs are ``trust``'s as of each handshake.

    gRPC calls the fetcher at every new connection (as the sidecar's trainer link does for its
    renewed certificate, ``sidecar/_link.py``); it builds a new configuration only when the CAs changed. A
    connection already open keeps the CAs of its handshake, which is why ``Callers`` checks the
    silo's CAs again on every call.
    """
    pair = [(credentials.private_key_pem, credentials.certificate_pem)]
    roots = trust.roots()
    current = [(roots, grpc.ssl_server_certificate_configuration(pair, root_certificates=roots))]

    def fetch() -> grpc.ServerCertificateConfiguration:
        roots = trust.roots()
        if roots != current[0][0]:
            current[0] = (roots, grpc.ssl_server_certificate_configuration(pair, root_certificates=roots))
        return current[0][1]

    return grpc.dynamic_ssl_server_credentials(current[0][1], fetch, require_client_authentication=True)


def _as_sent(message: bytes) -> bytes:
    """A response already serialized (``AggregatorService.GetModel``'s chunks)."""
    return message
