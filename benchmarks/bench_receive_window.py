"""One upload's throughput over a distant link, for each stream window the hub may use, next to gRPC's own sizing.

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/bench_receive_window.py [--rtt-ms 0,20,100]
        [--window-kib 64,1024] [--mib 32] [--read-buffer-kib 64]

The hub's server holds each stream's HTTP/2 receive window at ``spec.rateLimits.streamWindowKiB``
(64 KiB by default) with BDP probing off (``fedsilo.aggregator._service.receive_window_options``),
so an upload waiting for an upload slot is not buffered whole in the hub (docs/big-models.md).
A window also caps how many bytes of one stream are in flight, so on a long round trip it caps
an upload's throughput. This measures that: a gRPC server with each window of ``--window-kib``,
and one with gRPC's own sizing (the baseline, ``streamWindowKiB: 0``), each read a
client-streaming upload of ``--mib`` MiB in 1 MiB messages (the sidecar's chunk size)
through a delay line on loopback that holds every byte for half the round trip each way.
The kernel's netem is not available here; the delay line is a proxy that acknowledges at
once and forwards after the delay, so TCP's own window does not limit, and the HTTP/2 window
(whose updates travel back through the same delay) is what the figures compare. Plain TCP:
TLS changes neither window. With ``--read-buffer-kib``, each setting runs a second time with
each connection's read buffer capped at that size (``read_buffer_options``, as the hub's server
does): the cap must not slow an upload. The load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures

import grpc
from _harness import print_figures

from fedsilo.aggregator._service import read_buffer_options, receive_window_options

CHUNK = 1 << 20
METHOD = "/bench.Upload/Send"
MESSAGE_LIMIT = [("grpc.max_receive_message_length", 4 << 20), ("grpc.max_send_message_length", 4 << 20)]


def _server(options: Sequence[tuple[str, int]]) -> tuple[grpc.Server, int]:
    """A server whose one client-streaming method reads every message and returns the byte count."""

    def send(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        return str(sum(len(message) for message in requests)).encode()

    handler = grpc.method_handlers_generic_handler("bench.Upload", {"Send": grpc.stream_unary_rpc_method_handler(send)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[*MESSAGE_LIMIT, *options])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


class DelayLine:
    """A TCP proxy on loopback that forwards each direction's bytes after ``delay`` seconds."""

    def __init__(self, target_port: int, delay: float) -> None:
        self._target = target_port
        self._delay = delay
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self._target)
        await asyncio.gather(self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    writer.close()
                    return
                await asyncio.sleep(max(0.0, due - self._loop.time()))
                writer.write(data)
                await writer.drain()

        forwarding = asyncio.ensure_future(forward())
        while data := await reader.read(1 << 16):
            queue.put_nowait((self._loop.time() + self._delay, data))
        queue.put_nowait((0.0, b""))
        await forwarding

    def close(self) -> None:
        # The loop's thread is a daemon: connections still open when the process ends go with it.
        self._loop.call_soon_threadsafe(self._loop.stop)


def _upload_seconds(port: int, mib: int) -> float:
    payload = os.urandom(CHUNK)
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=MESSAGE_LIMIT) as channel:
        send = channel.stream_unary(METHOD)
        send(iter([b"x"]), timeout=60)  # the connection is open before the clock starts
        started = time.perf_counter()
        received = send(iter([payload] * mib), timeout=600)
        elapsed = time.perf_counter() - started
    assert int(received) == mib * CHUNK, received
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt-ms", default="0,20,100", help="round trips to measure, comma-separated")
    parser.add_argument("--window-kib", default="64,1024", help="the hub's stream windows to measure, in KiB")
    parser.add_argument("--mib", type=int, default=32, help="the upload's size in MiB")
    parser.add_argument("--read-buffer-kib", type=int, default=0, help="also each setting with reads capped at this")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    rows = []
    for rtt in (float(value) for value in args.rtt_ms.split(",")):
        row: dict[str, object] = {"rtt_ms": rtt}
        windows = [int(value) for value in args.window_kib.split(",")]
        settings = [(f"{kib} KiB window", receive_window_options(kib << 10)) for kib in windows]
        settings.append(("gRPC's sizing", receive_window_options(0)))
        if args.read_buffer_kib:
            capped = read_buffer_options(args.read_buffer_kib << 10)
            reads = f", reads of {args.read_buffer_kib} KiB"
            settings = [
                pair for name, options in settings for pair in ((name, options), (name + reads, options + capped))
            ]
        for name, options in settings:
            server, port = _server(options)
            line = DelayLine(port, rtt / 2000)
            try:
                seconds = _upload_seconds(line.port, args.mib)
            finally:
                line.close()
                server.stop(None)
            row[f"{name} MiB/s"] = round(args.mib / seconds, 1)
        rows.append(row)
        print(row, flush=True)
    print_figures(f"one {args.mib} MiB upload in 1 MiB messages, through a delay line", rows)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
