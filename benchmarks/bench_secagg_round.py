"""Masked vs plain rounds over the real mTLS gRPC service, training excluded.

1. ratio: a masked round vs a plain round, 10 silos, 1M parameters (target: at most 1.3x).
2. memory: the hub's peak memory with 10, 50 and 100 silos, 1M parameters, masked and plain
   (target: flat within 20% of the 10-silo figure), as the Python heap (tracemalloc: the
   aggregator's arrays and messages) and as the growth of the resident set (which adds
   gRPC's transport buffers and the threads serving the silos), each next to the same run with
   the hub's policy decided on every handler thread and downloads in 1 MiB messages, with its
   read buffers sized by gRPC, and with gRPC's and glibc's defaults (the hub before its
   memory was bounded); the resident set near its peak by kind of mapping (malloc arenas, thread
   stacks...) and every run's load average go to benchmarks/results/hub-memory.json.
   ``silos=10,50``, ``hubs=...`` and ``modes=...`` run only those; ``neighbours=sparse`` masks over
   SecAgg+'s sparse graph instead of the complete one.
3. bytes: bytes on the wire per silo vs the float32 update (target: at most 1.05x).
4. graphs: masked vs plain round time at 5, 10, 20, 50 and 100 silos, over the complete graph
   and over the sparse neighbour graph of SecAgg+ (target: at most 1.5x at 50 and 100 silos),
   100k parameters so the 100-silo runs fit this machine.
5. protocol: the masking protocol's CPU time per silo and at the hub, complete vs sparse graph,
   in memory (no gRPC, no training): what a silo on its own machine spends on masking,
   load-independent where wall-clock rounds of 100 silos on one shared 2-core machine are not.
6. scale: one run per silo count and mode at 10, 50 and 100 silos, 100k parameters, plain next
   to masked over the sparse neighbour graph (SecAgg+): the masked / plain round ratio (target
   at most 1.5x at 50 and 100 silos) in wall time and in CPU time (hub and sidecars; load on
   the machine inflates the first, not the second), and the hub's peak memory, Python heap and resident set,
   from the same runs (target: flat within 20% of the 10-silo figure). Printed row by row.
7. connections: what idle mTLS connections cost the hub's server: its resident set before and
   after 10, 50 and 100 clients have each connected and made one call (the allocator bounded
   as the hub's is), by kind of mapping: the per-connection TLS and HTTP/2 buffers, apart from
   any round's data.

    .venv/bin/python benchmarks/bench_secagg_round.py [ratio] [memory [silos=10,50,100] [hubs=bounded,policy_per_thread,reads_unbounded,defaults] [modes=masked,plain] [neighbours=sparse]] [bytes] [graphs] [protocol] [scale] [connections]

With no argument every part runs; the memory, graphs and scale parts take several minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from _harness import HUBS, RoundFigures, measure_in_child, print_figures
from _residency import residency

from fedsilo.aggregator import serve
from fedsilo.identity import CertificateAuthority, SigningKey
from fedsilo.launch import bound_allocator_arenas
from fedsilo.protocol import rpc
from fedsilo.secagg import SecAggClient, SecAggConfig, SecAggServer, sparse_parameters

T = TypeVar("T")

SILO_COUNTS = (10, 50, 100)
GRAPH_SILOS = (5, 10, 20, 50, 100)
GRAPH_PARAMETERS = 100_000
MODES = ("masked", "plain")
MEMORY_RESULTS = Path(__file__).parent / "results" / "hub-memory.json"


def round_ratio() -> tuple[RoundFigures, RoundFigures]:
    """Part 1: a masked and a plain round at 10 silos."""
    plain = measure_in_child(10, 1_000_000, "plain")
    masked = measure_in_child(10, 1_000_000, "masked")
    print_figures(
        "masked vs plain round, 10 silos, 1M parameters",
        [
            {
                "plain_round_s": plain.median_seconds,
                "masked_round_s": masked.median_seconds,
                "ratio": masked.median_seconds / plain.median_seconds,
                "target": 1.3,
            }
        ],
    )
    return plain, masked


def hub_memory(
    silo_counts: tuple[int, ...],
    hubs: tuple[str, ...] = HUBS,
    modes: tuple[str, ...] = MODES,
    neighbours: str = "complete",
) -> None:
    """Part 2: the hub's peak memory as the number of silos grows, in both modes, bounded and as before.

    Each configuration runs once per hub of ``hubs`` (:data:`_harness.HUBS`), interleaved: the hub
    as it serves now (bounded receive windows and read buffers, two malloc arenas, its policy
    engine on a thread of its own, 256 KiB download messages) and as each baseline. Every run's
    figures, its resident set by kind of mapping and the load average go to :data:`MEMORY_RESULTS`.
    ``neighbours``: the masking graph, complete (every pair of silos) or sparse (SecAgg+).
    """
    runs: list[dict[str, object]] = []
    for silos in silo_counts:
        for mode in modes:
            for hub in hubs:
                load = os.getloadavg()
                # Long deadlines: on a loaded 2-core machine 50 silos in one process miss the default ones.
                figures = measure_in_child(
                    silos,
                    1_000_000,
                    mode,
                    rounds=1,
                    trace_memory=True,
                    round_timeout=1200,
                    hub=hub,
                    neighbours=neighbours,
                )
                runs.append(
                    {
                        "silos": silos,
                        "mode": mode,
                        "hub": hub,
                        "rss_growth_mib": figures.hub_peak_rss_mib,
                        "rss_peak_mib": figures.hub_peak_rss_total_mib,
                        "python_heap_mib": figures.hub_peak_python_heap_mib,
                        "most_threads": figures.hub_most_threads,
                        "round_s": figures.median_seconds,
                        "resident_set_near_peak_mib": figures.hub_residency_mib,
                        "load_average": [round(x, 1) for x in (*load, *os.getloadavg())],
                    }
                )
                print(json.dumps(runs[-1]), flush=True)
    rows = []
    for mode in modes:
        for hub in hubs:
            mine = {int(str(r["silos"])): r for r in runs if r["mode"] == mode and r["hub"] == hub}
            for measure in ("rss_growth_mib", "rss_peak_mib", "python_heap_mib"):
                row: dict[str, object] = {"mode": mode, "hub": hub, "measure": measure}
                for n in silo_counts:
                    row[f"silos_{n}"] = mine[n][measure]
                for n in silo_counts[1:]:
                    row[f"ratio_{n}_to_{silo_counts[0]}"] = float(str(mine[n][measure])) / float(
                        str(mine[silo_counts[0]][measure])
                    )
                row["target"] = 1.2
                rows.append(row)
    title = (
        f"hub peak memory, 1M parameters, one round: the hub as it serves now vs {', '.join(hubs[1:]) or 'no baseline'}"
    )
    print_figures(title, rows)
    MEMORY_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    MEMORY_RESULTS.write_text(json.dumps({"benchmark": title, "results": rows, "runs": runs}, indent=2) + "\n")


def bytes_on_wire(plain: RoundFigures, masked: RoundFigures) -> None:
    """Part 3: what one silo sends per round against its float32 update."""
    print_figures(
        "bytes sent per silo per round vs the float32 update",
        [
            {
                "mode": figures.mode,
                "float32_update_bytes": figures.parameters * 4,
                "bytes_up_per_silo": int(figures.bytes_up_per_silo),
                "ratio": figures.bytes_up_per_silo / (figures.parameters * 4),
                "target": 1.05,
            }
            for figures in (plain, masked)
        ],
    )


def graphs() -> None:
    """Masked (complete and sparse graph) vs plain rounds, side by side, one row per silo count."""
    rows = []
    for silos in GRAPH_SILOS:
        plain = measure_in_child(silos, GRAPH_PARAMETERS, "plain", rounds=2)
        complete = measure_in_child(silos, GRAPH_PARAMETERS, "masked", rounds=2)
        sparse = measure_in_child(silos, GRAPH_PARAMETERS, "masked", rounds=2, neighbours="sparse")
        rows.append(
            {
                "silos": silos,
                "plain_round_s": plain.median_seconds,
                "complete_round_s": complete.median_seconds,
                "sparse_round_s": sparse.median_seconds,
                "complete_ratio": complete.median_seconds / plain.median_seconds,
                "sparse_ratio": sparse.median_seconds / plain.median_seconds,
                "target": 1.5,
            }
        )
        # Each row as it is measured: the 100-silo runs take minutes.
        print_figures(f"masked vs plain round by masking graph, {GRAPH_PARAMETERS} parameters", rows)


def scale() -> None:
    """Part 6: masked (sparse graph) vs plain at 10, 50 and 100 silos: round ratio and hub memory, same runs."""
    rows = []
    for silos in SILO_COUNTS:
        plain = measure_in_child(silos, GRAPH_PARAMETERS, "plain", rounds=2, trace_memory=True)
        masked = measure_in_child(silos, GRAPH_PARAMETERS, "masked", rounds=2, trace_memory=True, neighbours="sparse")
        rows.append(
            {
                "silos": silos,
                "plain_round_s": plain.median_seconds,
                "masked_round_s": masked.median_seconds,
                "masked_to_plain": masked.median_seconds / plain.median_seconds,
                # The same runs' CPU time, hub and sidecars (two rounds, joins and key agreements
                # included): what wall time shows only on an otherwise idle machine.
                "plain_cpu_s": plain.cpu_seconds,
                "masked_cpu_s": masked.cpu_seconds,
                "masked_to_plain_cpu": masked.cpu_seconds / plain.cpu_seconds,
                "plain_hub_heap_mib": plain.hub_peak_python_heap_mib,
                "masked_hub_heap_mib": masked.hub_peak_python_heap_mib,
                "plain_hub_rss_mib": plain.hub_peak_rss_total_mib,
                "masked_hub_rss_mib": masked.hub_peak_rss_total_mib,
            }
        )
        print_figures(f"masked (sparse graph) vs plain by silo count, {GRAPH_PARAMETERS} parameters", rows)


def protocol_cpu(silos: int, parameters: int, degree: int | None, threshold: int) -> tuple[float, float]:
    """CPU seconds of one in-memory round: the mean per silo, and the hub's."""
    names = tuple(f"silo-{i:03d}" for i in range(silos))
    signing = {n: SigningKey.generate() for n in names}
    keys = {n: k.public_key for n, k in signing.items()}
    spent: defaultdict[str, float] = defaultdict(float)

    def timed(party: str, call: Callable[[], T]) -> T:
        start = time.process_time()
        result = call()
        spent[party] += time.process_time() - start
        return result

    def config() -> SecAggConfig:
        return SecAggConfig("bench", 1, names, threshold, parameters + 1, 16, 4.0, degree=degree)

    clients = {n: SecAggClient(config(), n, signing[n], keys) for n in names}
    server = SecAggServer(config(), keys)
    adverts = {n: timed(n, clients[n].advertise) for n in names}
    for n, reply in timed("hub", lambda: server.advertise(adverts)).items():
        timed(n, lambda c=clients[n], r=reply: c.receive_adverts(r))
    shares = {n: timed(n, clients[n].share_keys) for n in names}
    for n, reply in timed("hub", lambda: server.share_keys(shares)).items():
        timed(n, lambda c=clients[n], r=reply: c.receive_shares(r))
    values = np.random.default_rng(0).uniform(-1, 1, parameters).astype(np.float32)
    for n in names:
        masked = timed(n, lambda c=clients[n]: c.masked_input(values, 100))
        timed("hub", lambda s=n, m=masked: server.add_input(s, m))
    request = timed("hub", server.unmask_request)
    reveals = {n: timed(n, lambda c=clients[n]: c.unmask(request)) for n in names}
    timed("hub", lambda: server.unmask(reveals))
    return sum(spent[n] for n in names) / silos, spent["hub"]


def protocol() -> None:
    """Per-silo and hub CPU of the masking protocol, complete vs sparse graph (10% / 10%)."""
    rows = []
    for silos in GRAPH_SILOS:
        found = sparse_parameters(silos, 0.1, 0.1)
        sparse = (found.degree, found.threshold) if found is not None and found.colluding_silos >= 1 else None
        complete_silo, complete_hub = protocol_cpu(silos, GRAPH_PARAMETERS, None, silos // 2 + 1)
        sparse_silo, sparse_hub = (
            protocol_cpu(silos, GRAPH_PARAMETERS, *sparse) if sparse else (complete_silo, complete_hub)
        )
        rows.append(
            {
                "silos": silos,
                "degree": sparse[0] if sparse else silos - 1,
                "complete_silo_cpu_s": complete_silo,
                "sparse_silo_cpu_s": sparse_silo,
                "complete_hub_cpu_s": complete_hub,
                "sparse_hub_cpu_s": sparse_hub,
                "silo_saving": complete_silo / sparse_silo,
            }
        )
        print_figures(f"masking protocol CPU per silo and at the hub, {GRAPH_PARAMETERS} parameters", rows)


_CONNECT = """
import sys, time
from pathlib import Path
import grpc
from fedsilo.protocol import pb, rpc
port, count, certificates = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
authority = (certificates / "ca.pem").read_bytes()
channels = []
for i in range(count):
    key, chain = (certificates / f"{i}.key").read_bytes(), (certificates / f"{i}.pem").read_bytes()
    channel = grpc.secure_channel(f"localhost:{port}", grpc.ssl_channel_credentials(authority, key, chain))
    try:  # any call completes the handshake; the servicer answers UNIMPLEMENTED
        rpc.AggregatorStub(channel).Join(pb.JoinRequest(job="idle", silo="idle", num_samples=1), timeout=60)
    except grpc.RpcError:
        pass
    channels.append(channel)
print("connected", flush=True)
time.sleep(600)
"""


def _idle_connections(count: int) -> dict[str, object]:
    """In this process: a hub's server, ``count`` connected clients in another; the resident set's growth."""
    bound_allocator_arenas()
    ca = CertificateAuthority.create()
    server, port = serve(
        rpc.AggregatorServicer(),
        "localhost:0",
        ca.issue("aggregator", server=True, dns_names=("localhost",)),
        workers=8,
    )
    with tempfile.TemporaryDirectory() as tmp:
        certificates = Path(tmp)
        (certificates / "ca.pem").write_bytes(ca.certificate_pem)
        for i in range(count):
            issued = ca.issue(f"silo-{i}", server=False)
            (certificates / f"{i}.key").write_bytes(issued.private_key_pem)
            (certificates / f"{i}.pem").write_bytes(issued.certificate_pem)
        before = residency()
        client = subprocess.Popen(
            [sys.executable, "-c", _CONNECT, str(port), str(count), tmp], stdout=subprocess.PIPE, text=True
        )
        try:
            assert client.stdout is not None and client.stdout.readline().strip() == "connected"
            time.sleep(1)
            after = residency()
        finally:
            client.kill()
            client.wait()
            server.stop(None)
    growth = {kind: after[kind] - before[kind] for kind in after}
    total = growth.pop("total")
    return {"connections": count, "growth_mib": total, "per_connection_kib": total * 1024 / count} | {
        f"{kind}_mib": mib for kind, mib in growth.items()
    }


def connections() -> None:
    """Part 7: the hub server's resident-set growth with idle mTLS connections, each count in a fresh process."""
    rows = []
    for count in SILO_COUNTS:
        done = subprocess.run(
            [sys.executable, __file__, "_connections", str(count)], capture_output=True, text=True, check=True
        )
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["load_average"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        rows.append(row)
    print_figures("hub server resident-set growth with idle mTLS connections", rows)


def main() -> None:
    if sys.argv[1:2] == ["_connections"]:  # the fresh process of one connections() measurement
        print(json.dumps(_idle_connections(int(sys.argv[2]))))
        return
    words = sys.argv[1:]
    # "silos=10,50": the memory part at these silo counts only (the first is the ratios' base);
    # "hubs=bounded,defaults" and "modes=plain": only these hubs (_harness.HUBS) and modes.
    options = {w.split("=", 1)[0]: tuple(w.split("=", 1)[1].split(",")) for w in words if "=" in w}
    counts = tuple(int(n) for n in options["silos"]) if "silos" in options else SILO_COUNTS
    hubs, modes = options.get("hubs", HUBS), options.get("modes", MODES)
    parts = {w for w in words if "=" not in w} or {
        "ratio",
        "memory",
        "bytes",
        "graphs",
        "protocol",
        "scale",
        "connections",
    }
    if parts & {"ratio", "bytes"}:
        plain, masked = round_ratio()
        if "bytes" in parts:
            bytes_on_wire(plain, masked)
    if "memory" in parts:
        hub_memory(counts, hubs, modes, options.get("neighbours", ("complete",))[0])
    if "protocol" in parts:
        protocol()
    if "graphs" in parts:
        graphs()
    if "scale" in parts:
        scale()
    if "connections" in parts:
        connections()


if __name__ == "__main__":
    main()
