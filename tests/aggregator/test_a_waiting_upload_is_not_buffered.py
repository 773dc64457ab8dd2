"""An upload whose handler has not read it yet is held back by the sender, not buffered by the hub.

While an upload waits for one of the hub's few upload slots, its handler reads nothing; what the
silo sends meanwhile stays in gRPC core's buffers on the hub, up to the stream's flow-control
window. With gRPC's default (BDP probing) that window grows to 4 MiB per stream, about 4 MiB of
hub memory per waiting silo; the hub's server (``serve``) keeps it at the job's
``spec.rateLimits.streamWindowKiB`` (``start_server``). Sidecars reserve their slot first
(tests/aggregator/test_upload_reservations.py); this is what a silo that does not may park.

The server, its transport options and mTLS are the real ones; only the servicer is a stand-in,
whose ``SubmitUpdate`` waits before reading as the admission steps do while every slot is taken
(a state the real hub reaches only with two other silos stalling their uploads for a deadline).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from fedsilo.aggregator._service import serve
from fedsilo.identity import CertificateAuthority
from fedsilo.protocol import pb, rpc

CHUNK = 16 << 10  # small messages, so the count of those sent measures the window closely
CHUNKS = (4 << 20) // CHUNK  # a 4 MiB upload: what the default window would let in whole


class _ParkedUploads(rpc.AggregatorServicer):
    """``SubmitUpdate`` waits until released before it reads its stream, then reads it all."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.received = 0

    def SubmitUpdate(self, request_iterator: Iterator[pb.UpdateChunk], context: grpc.ServicerContext) -> pb.Decision:
        self.release.wait(60)
        self.received = sum(1 for _ in request_iterator)
        return pb.Decision(accepted=True)


def _upload(sent: list[int]) -> Iterator[pb.UpdateChunk]:
    """A stream of small chunks; ``sent[0]`` counts the ones gRPC has taken from it."""
    data = bytes(CHUNK)
    for offset in range(CHUNKS):
        sent[0] += 1
        yield pb.UpdateChunk(vector=pb.VectorChunk(offset=offset, dtype="uint8", data=data))


def _settled(sent: list[int], quiet: float = 1.0, timeout: float = 30.0) -> int:
    """The count once it has not moved for ``quiet`` seconds (the sender is held back)."""
    deadline = time.monotonic() + timeout
    last, since = sent[0], time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if sent[0] != last:
            last, since = sent[0], time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


@pytest.mark.parametrize("window", [64 << 10, 1 << 20], ids=["a job's 64 KiB", "a job's 1 MiB"])
def test_a_silo_can_send_at_most_the_stream_window_before_the_hub_reads_its_upload(window: int) -> None:
    ca = CertificateAuthority.create()
    service = _ParkedUploads()
    server, port = serve(
        service,
        "localhost:0",
        ca.issue("aggregator", server=True, dns_names=("localhost",)),
        workers=4,
        stream_window_bytes=window,
    )
    silo = ca.issue("silo-a", server=False)
    channel = grpc.secure_channel(
        f"localhost:{port}",
        grpc.ssl_channel_credentials(ca.certificate_pem, silo.private_key_pem, silo.certificate_pem),
    )
    try:
        sent = [0]
        reply = rpc.AggregatorStub(channel).SubmitUpdate.future(_upload(sent))
        held = _settled(sent)
        # What the hub may hold for it: the window, plus the few messages gRPC's client and
        # server each hold while a send completes. The default window would have let in all 4 MiB.
        assert held * CHUNK <= window + 8 * CHUNK, f"{held} chunks of {CHUNK} bytes went out unread"
        # The window is the setting's, not a floor of gRPC's: a larger one lets in more.
        assert held * CHUNK > window - 8 * CHUNK, f"only {held} chunks of {CHUNK} bytes went out"
        service.release.set()
        assert reply.result(timeout=60).accepted
        assert service.received == CHUNKS  # held back, never dropped
    finally:
        channel.close()
        server.stop(grace=None)
