"""What the hub holds for each model download in flight, and what smaller download messages cost.

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/bench_model_download.py [--silos 20]
        [--mib 64] [--message-kib 1024,256,128,64] [--rounds 3]

Every silo downloads the round's model at once (``GetModel``, a server stream). The hub's
gRPC server holds a copy of the message each download is sending until the transport has
written it, so the hub's memory at the start of a round grows with the silos downloading
times the size of one download message. For each message size, a fresh server process
(``fedsilo.aggregator.serve``: mutual TLS, the hub's windows and read buffers) serves a
``--mib`` MiB model, cut once into messages of that size as the hub cuts it, to ``--silos``
clients that each hold a connection of their own and download it at once, ``--rounds`` times,
reassembling it as a sidecar does. Printed per message size: the server's resident-set growth
(its highest sample, every 10 ms, over its value before the first download), its CPU seconds
(its own sampler's included, the same for every size), and the
median wall time of one round of downloads; 1024 KiB (what the hub sent before) is the baseline,
measured in the same run, and ``DOWNLOAD_MESSAGE_BYTES`` (256 KiB) what it sends now. The load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from _harness import print_figures

from fedsilo.aggregator import serve
from fedsilo.identity import CertificateAuthority
from fedsilo.protocol import blob_from_chunks, pb, rpc
from fedsilo.protocol._streams import split_bytes


class _Model(rpc.AggregatorServicer):
    """Serves one model, cut once into messages of a given size, to every caller."""

    def __init__(self, blob: bytes, message_bytes: int) -> None:
        self._chunks = [
            pb.BytesChunk(offset=offset, total=total, data=piece)
            for offset, total, piece in split_bytes(blob, message_bytes)
        ]

    def GetModel(self, request: pb.RoundRef, context: grpc.ServicerContext) -> Iterator[pb.BytesChunk]:
        yield from self._chunks


def _serve(message_kib: int, mib: int, certificates: Path) -> None:
    """The server process: serve, print the port, wait for a line on stdin, print its figures."""
    ca = CertificateAuthority.create()
    (certificates / "ca.pem").write_bytes(ca.certificate_pem)
    client = ca.issue("silo", server=False)
    (certificates / "client.key").write_bytes(client.private_key_pem)
    (certificates / "client.pem").write_bytes(client.certificate_pem)
    model = _Model(os.urandom(mib << 20), message_kib << 10)
    server, port = serve(
        model,
        "localhost:0",
        ca.issue("aggregator", server=True, dns_names=("localhost",)),
        workers=64,
    )
    before, peak = _resident_mib(), 0.0
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    done = threading.Event()

    def sample() -> None:  # the resident set's highest sample while the clients download
        nonlocal peak
        while not done.wait(0.01):
            peak = max(peak, _resident_mib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    print(port, flush=True)
    sys.stdin.readline()
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_SELF)
    server.stop(None)
    cpu_s = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    print(json.dumps({"rss_growth_mib": peak - before, "cpu_s": cpu_s}))


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _download_rounds(port: int, certificates: Path, silos: int, rounds: int, mib: int) -> list[float]:
    """``rounds`` times, ``silos`` clients (a connection each) download the model at once; each round's seconds."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(certificates / "ca.pem").read_bytes(),
        private_key=(certificates / "client.key").read_bytes(),
        certificate_chain=(certificates / "client.pem").read_bytes(),
    )
    # A subchannel pool per channel: one connection per client, as each silo has its own.
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", 4 << 20)]
    channels = [grpc.secure_channel(f"localhost:{port}", credentials, options=options) for _ in range(silos)]
    stubs = [rpc.AggregatorStub(channel) for channel in channels]
    for channel in channels:
        grpc.channel_ready_future(channel).result(timeout=60)
    seconds = []
    try:
        for _ in range(rounds):
            start = threading.Barrier(silos + 1)
            sizes: list[int] = []
            threads = [threading.Thread(target=_download, args=(stub, start, sizes, mib)) for stub in stubs]
            for thread in threads:
                thread.start()
            start.wait()
            began = time.perf_counter()
            for thread in threads:
                thread.join()
            seconds.append(time.perf_counter() - began)
            assert sizes == [mib << 20] * silos, sizes
    finally:
        for channel in channels:
            channel.close()
    return seconds


def _download(stub: rpc.AggregatorStub, start: threading.Barrier, sizes: list[int], mib: int) -> None:
    start.wait()
    sizes.append(len(blob_from_chunks(stub.GetModel(pb.RoundRef(), timeout=600), mib << 20)))


def main() -> None:
    if sys.argv[1:2] == ["_serve"]:
        _serve(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--silos", type=int, default=20, help="clients downloading at once")
    parser.add_argument("--mib", type=int, default=64, help="the model's size in MiB")
    parser.add_argument(
        "--message-kib", default="1024,256,128,64", help="download message sizes; the first is the baseline"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of downloads per message size")
    args = parser.parse_args()
    rows = []
    for message_kib in (int(value) for value in args.message_kib.split(",")):
        load = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as tmp:
            server = subprocess.Popen(
                [sys.executable, __file__, "_serve", str(message_kib), str(args.mib), tmp],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert server.stdin is not None and server.stdout is not None
            try:
                port = int(server.stdout.readline())
                seconds = _download_rounds(port, Path(tmp), args.silos, args.rounds, args.mib)
                server.stdin.write("done\n")
                server.stdin.flush()
                figures = json.loads(server.stdout.readline())
            finally:
                server.kill()
                server.wait()
        rows.append(
            {
                "message_kib": message_kib,
                "silos": args.silos,
                "model_mib": args.mib,
                "server_rss_growth_mib": figures["rss_growth_mib"],
                "server_cpu_s": figures["cpu_s"],
                "round_s_median": statistics.median(seconds),
                "load_average": f"{load:.1f} to {os.getloadavg()[0]:.1f}",
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print_figures("model downloads in flight: the hub's memory and CPU by download message size", rows)


if __name__ == "__main__":
    main()
