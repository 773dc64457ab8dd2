"""Shared harness: a real hub (coordinator + mTLS gRPC server) in this process and N real
sidecars in a second process whose trainers answer instantly, so a round's cost is the
protocol's cost (training excluded).

Peak memory of the hub is reported twice: the growth of this process's resident set during
the rounds (which includes gRPC's per-connection transport buffers), and the peak of the
Python heap (tracemalloc: the aggregator's own arrays and messages). With ``trace_memory`` the
resident set near its peak is also broken down by kind of mapping (``_residency``: malloc
arenas, thread stacks...), next to the most threads the hub had.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from _residency import PeakSampler
from rich.console import Console
from rich.table import Table

from fedsilo.aggregator import READ_BUFFER_BYTES, JobCoordinator, RoundSummary, start_server
from fedsilo.aggregator import _service as service_module
from fedsilo.aggregator._service import AggregatorService
from fedsilo.api import FederatedJob, Silo, load_manifest
from fedsilo.audit import AuditLog
from fedsilo.identity import (
    CertificateAuthority,
    SigningKey,
    SiloIdentity,
    VerifyKey,
    read_identity,
    write_identity,
)
from fedsilo.launch import bound_allocator_arenas
from fedsilo.policy import EmbeddedRegoEngine, PolicyGate
from fedsilo.protocol import CHUNK_BYTES, TensorLayout, TrainerReply, Weights, decode_weights, encode_weights, rpc
from fedsilo.registry import LocalRegistry
from fedsilo.runner import AUDIT_LOG, build_gate
from fedsilo.sidecar import Sidecar, SidecarConfig, TrainerLinkService
from fedsilo.strategies import make_strategy


@dataclass
class RoundFigures:
    """What one benchmark configuration measured."""

    silos: int
    parameters: int
    mode: str
    round_seconds: list[float]
    hub_peak_rss_mib: float
    hub_peak_python_heap_mib: float
    bytes_up_per_silo: float
    bytes_down_per_silo: float
    # The hub process's peak resident set (not its growth), and each sidecar process's when each
    # silo ran in its own process (``separate_sidecars``; a sidecar's figure includes its instant trainer).
    hub_peak_rss_total_mib: float = 0.0
    sidecar_peak_rss_mib: tuple[float, ...] = ()
    # With ``trace_memory``: the hub's resident set near its peak by kind of mapping (``_residency.residency``,
    # MiB) and the most threads its process had.
    hub_residency_mib: dict[str, float] = field(default_factory=dict)
    hub_most_threads: int = 0
    # With ``heap_sites``: the lines holding the most of the hub's Python heap near its peak.
    hub_heap_sites: list[str] = field(default_factory=list)
    # CPU seconds (user + system) the hub and every sidecar process spent from the sidecars'
    # start to the job's end: the run's cost, which other work on the machine does not inflate
    # as it does wall-clock time.
    cpu_seconds: float = 0.0

    @property
    def median_seconds(self) -> float:
        return float(np.median(self.round_seconds))


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """User and system CPU time of this process and of its children that have ended."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


def model_of(parameters: int) -> Weights:
    """A model of about ``parameters`` values in two tensors."""
    side = int(parameters**0.5)
    return {
        "layer.weight": np.zeros((side, side), np.float32),
        "layer.bias": np.zeros(parameters - side * side, np.float32),
    }


#: How the benchmark's hub serves: as it does now; with its policy decided on each gRPC handler thread
#: and downloads in 1 MiB messages (``policy_per_thread``: as it did before the embedded engine had a
#: thread of its own and downloads came in ``DOWNLOAD_MESSAGE_BYTES``); as it did before its connections'
#: read buffers were capped (``reads_unbounded``: windows and arenas bounded, gRPC's read sizing); with
#: gRPC's and glibc's defaults (``defaults``: before the hub's memory was bounded at all). The memory
#: benchmark's baselines.
HUBS = ("bounded", "policy_per_thread", "reads_unbounded", "defaults")


class _DecidedOnCallersThreads(EmbeddedRegoEngine):
    """The embedded engine as it was before it had a thread of its own: rego-cpp runs on whoever asks.

    rego-cpp's allocator (snmalloc) then keeps slabs for every handler thread that ever decided.
    """

    def __init__(self) -> None:
        super().__init__()
        self._caller_lock = threading.Lock()

    def evaluate(self, decision_path: str, document: Any) -> object:
        with self._caller_lock:
            _, results = self._query(json.dumps(document, allow_nan=False), decision_path)
        return results[0].expressions[0]


#: Enrolled in the job but never joins: it only floods the aggregator (``run_round_benchmark(flood=...)``).
FLOODER = "flooder"
#: ``flood(port, identity_dir, stop)``: called in a thread while the rounds run, until ``stop`` is set.
Flood = Callable[[int, Path, threading.Event], None]


def job_documents(
    silos: int,
    rounds: int,
    mode: str,
    extra: tuple[str, ...] = (),
    neighbours: str = "complete",
    round_timeout: int = 300,
) -> list[dict[str, Any]]:
    """A job of ``silos`` silos that all must answer, plus ``extra`` enrolled silos it does not wait for.

    ``neighbours``: the masking graph, complete or sparse (its default 10% colluding, 10% dropping).
    """
    names = [f"silo-{i:02d}" for i in range(silos)] + list(extra)
    job = {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": "FederatedJob",
        "metadata": {"name": "bench"},
        "spec": {
            "silos": names,
            "minSilos": silos,
            "rounds": rounds,
            "roundTimeoutSeconds": round_timeout,
            "model": {"builtin": "mlp"},
            "aggregation": {"mode": mode}
            if neighbours == "complete"
            else {"mode": mode, "neighbours": {"graph": neighbours}},
            "policy": {"normCap": 1e6, "dataClass": "internal"},
        },
    }
    return [job] + [{"apiVersion": "fedsilo.io/v1alpha1", "kind": "Silo", "metadata": {"name": n}} for n in names]


def run_round_benchmark(
    silos: int,
    parameters: int,
    mode: str,
    rounds: int = 3,
    trace_memory: bool = False,
    flood: Flood | None = None,
    neighbours: str = "complete",
    round_timeout: int = 300,
    separate_sidecars: bool = False,
    hub: str = "bounded",
    heap_sites: bool = False,
    stream_window_kib: int | None = None,
    reservations: bool = True,
) -> RoundFigures:
    """Run ``rounds`` rounds of a ``silos``-silo job on a ``parameters``-value model.

    With ``separate_sidecars``, each silo's sidecar runs in a process of its own, so each one's
    peak memory is measured apart. With ``flood``, the job also enrolls :data:`FLOODER`, whose
    credentials ``flood`` uses from a thread while the rounds run; the honest silos' rounds are
    what is measured. ``hub`` is one of :data:`HUBS`: the hub as it serves now, or one of the memory
    benchmark's baselines.
    With ``heap_sites`` (and ``trace_memory``), the lines holding most of the hub's heap near its peak.
    ``stream_window_kib`` is the job's ``rateLimits.streamWindowKiB``; without ``reservations`` the
    hub answers ``ReserveUpload`` UNIMPLEMENTED, as a hub from before upload reservations did, so
    each sidecar streams at once and waits for its slot inside the upload.
    """
    if hub not in HUBS:
        raise ValueError(f"hub must be one of {', '.join(HUBS)}, not {hub!r}")
    if hub != "defaults":  # before any thread, as the local run's hub does
        bound_allocator_arenas()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        documents = job_documents(
            silos, rounds, mode, (FLOODER,) if flood is not None else (), neighbours, round_timeout
        )
        if hub == "defaults":  # the baseline's hub lets gRPC size its streams' windows (BDP probing)
            documents[0]["spec"]["rateLimits"] = {"streamWindowKiB": 0}
        if stream_window_kib is not None:
            documents[0]["spec"]["rateLimits"] = {"streamWindowKiB": stream_window_kib}
        if hub == "policy_per_thread":  # this process is the hub's alone (``measure_in_child``)
            service_module.DOWNLOAD_MESSAGE_BYTES = CHUNK_BYTES
        if not reservations:  # this process is the hub's alone (``measure_in_child``)
            AggregatorService.ReserveUpload = rpc.AggregatorServicer.ReserveUpload  # type: ignore[method-assign]
        ca = CertificateAuthority.create()
        keys: dict[str, VerifyKey] = {}
        for document in documents[1:]:
            name = document["metadata"]["name"]
            key = SigningKey.generate()
            write_identity(work / name, SiloIdentity(key, ca.issue(name, server=False)))
            document["spec"] = {"identity": {"publicKey": key.public_key.to_base64()}}
            keys[name] = key.public_key
        (work / "job.yaml").write_text(yaml.safe_dump_all(documents))
        job = FederatedJob.model_validate(documents[0])
        silo_objects = [Silo.model_validate(d) for d in documents[1:]]
        # The hub's key signs every global model; the sidecars verify them with its public half.
        hub_key = SigningKey.generate()
        (work / "aggregator-key.pub").write_text(hub_key.public_key.to_base64())
        coordinator = JobCoordinator(
            job,
            keys,
            model_of(parameters),
            make_strategy(job.spec),
            LocalRegistry(work / "registry"),
            build_gate(work, hub_key)
            if hub != "policy_per_thread"
            else PolicyGate(_DecidedOnCallersThreads(), AuditLog(work / AUDIT_LOG, hub_key)),
            model_key=hub_key,
            silo_ceilings={s.metadata.name: None for s in silo_objects},
            # The flooder never joins: the rounds start once the honest silos have (see below), not after
            # a wait for it that would outlast the sidecars' patience with their idle trainers.
            join_timeout=1.0 if flood is not None else None,
        )
        server, port = start_server(
            coordinator,
            "localhost:0",
            ca.issue("aggregator", server=True, dns_names=("localhost",)),
            read_buffer_bytes=READ_BUFFER_BYTES if hub == "bounded" else 0,  # 0: gRPC's own sizing
        )
        before = _rss_mib()
        cpu_before = _cpu_seconds()
        sampler = PeakSampler(heap_sites=heap_sites)
        if trace_memory:  # tracemalloc slows every allocation: only when memory is the question
            tracemalloc.start()
            sampler.start()
        honest = [d["metadata"]["name"] for d in documents[1:] if d["metadata"]["name"] != FLOODER]
        groups = [[silo] for silo in honest] if separate_sidecars else [honest]
        clients = [
            subprocess.Popen(
                [sys.executable, __file__, str(work), str(port), *group], stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for group in groups
        ]
        stop = threading.Event()
        flooding = threading.Thread(target=flood, args=(port, work / FLOODER, stop), daemon=True) if flood else None
        if flooding is not None:
            flooding.start()
        try:
            if flood is not None:
                _await_honest_joins(coordinator, len(honest))
            summaries: list[RoundSummary] = coordinator.run()
            # The sidecars learn that the job finished from the server: stop it only after them.
            outputs = [client.communicate(timeout=600) for client in clients]
        finally:
            stop.set()
            if flooding is not None:
                flooding.join(timeout=60)
            server.stop(grace=1)
            if trace_memory:
                sampler.stop()
            for client in clients:  # a failed job leaves its sidecars waiting for the hub: end them
                if client.poll() is None:
                    client.kill()
        for client, (_, err) in zip(clients, outputs, strict=True):
            if client.returncode != 0:
                raise RuntimeError(err.decode()[-3000:])
        sidecar_rss = (
            tuple(float(json.loads(out.decode().splitlines()[-1])["peak_rss_mib"]) for out, _ in outputs)
            if separate_sidecars
            else ()
        )
        trained = [s for s in summaries if s.silos]
        up = [v.bytes_up for s in trained for v in s.silos.values()]
        down = [v.bytes_down for s in trained for v in s.silos.values()]
        return RoundFigures(
            silos=silos,
            parameters=sum(a.size for a in model_of(parameters).values()),
            mode=mode,
            round_seconds=[s.seconds for s in trained],
            hub_peak_rss_mib=_rss_mib() - before,
            hub_peak_python_heap_mib=tracemalloc.get_traced_memory()[1] / 2**20,
            bytes_up_per_silo=float(np.mean(up)),
            bytes_down_per_silo=float(np.mean(down)),
            hub_peak_rss_total_mib=_rss_mib(),
            sidecar_peak_rss_mib=sidecar_rss,
            hub_residency_mib=sampler.peak,
            hub_most_threads=sampler.most_threads,
            hub_heap_sites=sampler.sites,
            cpu_seconds=_cpu_seconds() - cpu_before,
        )


def _await_honest_joins(coordinator: JobCoordinator, count: int, timeout: float = 300.0) -> None:
    """Wait until ``count`` silos have joined (the coordinator's presence: a benchmark may look inside)."""
    deadline = time.monotonic() + timeout
    while len(coordinator._presence.joined) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(coordinator._presence.joined)} of {count} honest silos joined")
        time.sleep(0.2)


def _instant_trainer(link: TrainerLinkService, stop: threading.Event) -> None:
    """Answers every task at once: the global model plus a small perturbation."""
    next_round = 0
    rng = np.random.default_rng()
    while not stop.is_set():
        # As a trainer process's long poll does, so the sidecar sees a live trainer (TRAINER_SILENT_SECONDS):
        # an in-process trainer makes no gRPC call the link could count.
        with link._cond:
            link._calls_in_progress += 1
        try:
            offered = link.next_task(next_round, 1.0)
        finally:
            link._release()
        if offered is None:
            continue
        task, blob = offered
        if task.kind == "finished":
            return
        if task.kind == "hello":
            link.complete(TrainerReply(round=0, num_samples=1000), b"")
        else:
            weights = decode_weights(blob)
            layout = TensorLayout.of(weights)
            local = layout.flatten(weights)
            del weights  # a benchmark's trainer holds as few model copies as it can (100M parameters: 400 MB each)
            local += rng.standard_normal(layout.size, dtype=np.float32) * np.float32(1e-3)
            fit = {"num_samples": 1000, "train_loss": 1.0, "steps": 1, "batch_size": 10}
            reply = TrainerReply.model_validate(
                {
                    "round": task.round,
                    "evaluation": {"loss": 1.0, "accuracy": 0.5, "num_samples": 100},
                    "fit": fit if task.kind == "fit" else None,
                }
            )
            link.complete(reply, encode_weights(layout.unflatten(local)) if task.kind == "fit" else b"")
        next_round = task.round + 1


def _client_main(work: Path, port: int, silos: list[str]) -> None:
    """The client process: one real Sidecar per silo of ``silos``, each with an instant trainer."""
    manifest = load_manifest(work / "job.yaml")
    peers = {s.metadata.name: VerifyKey.from_base64(s.spec.identity.public_key or "") for s in manifest.silos}
    hub_key = VerifyKey.from_base64((work / "aggregator-key.pub").read_text())
    threads = []
    stop = threading.Event()
    codes: list[int] = []
    for silo in silos:
        link = TrainerLinkService()
        sidecar = Sidecar(
            SidecarConfig(manifest.job, silo, f"localhost:{port}", peers, aggregator_key=hub_key),
            read_identity(work / silo),
            link,
        )
        threads.append(threading.Thread(target=_instant_trainer, args=(link, stop), daemon=True))
        threads.append(threading.Thread(target=lambda s=sidecar: codes.append(s.run()), daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=3600)
    stop.set()
    if any(codes) or len(codes) != len(silos):
        raise SystemExit(f"sidecars ended with {codes}")
    # The process's peak resident set, for a benchmark that runs one sidecar per process.
    print(json.dumps({"peak_rss_mib": _rss_mib()}))


def measure_in_child(
    silos: int,
    parameters: int,
    mode: str,
    rounds: int = 3,
    trace_memory: bool = False,
    neighbours: str = "complete",
    round_timeout: int = 300,
    separate_sidecars: bool = False,
    hub: str = "bounded",
    heap_sites: bool = False,
    stream_window_kib: int | None = None,
    reservations: bool = True,
) -> RoundFigures:
    """``run_round_benchmark`` in a fresh process, so its peak memory is its own."""
    here = str(Path(__file__).parent)
    code = (
        f"import json, dataclasses, sys; sys.path.insert(0, {here!r}); from _harness import run_round_benchmark; "
        f"print(json.dumps(dataclasses.asdict(run_round_benchmark({silos}, {parameters}, {mode!r}, {rounds}, "
        f"{trace_memory!r}, None, {neighbours!r}, round_timeout={round_timeout}, "
        f"separate_sidecars={separate_sidecars!r}, hub={hub!r}, "
        f"heap_sites={heap_sites!r}, stream_window_kib={stream_window_kib!r}, reservations={reservations!r}))))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr[-3000:])
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    figures["sidecar_peak_rss_mib"] = tuple(figures["sidecar_peak_rss_mib"])
    return RoundFigures(**figures)


def print_figures(title: str, rows: list[dict[str, Any]]) -> None:
    """A table on stdout, then the same rows as JSON."""
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()])
    Console().print(table)
    print(json.dumps({"benchmark": title, "results": rows}, indent=2))


if __name__ == "__main__":
    _client_main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
