"""Policy decisions per second and latency: the embedded rego-cpp engine vs a real OPA server.

    .venv/bin/python benchmarks/bench_policy.py [--decisions 3000] [--threads 8]

The OPA server is the pinned build (``scripts/build-tools opa``, or ``OPA_BIN``), started
the way the operator starts it (``opa_run_args``/``opa_config``, decision logs on, to a
file) over ``policies/`` on loopback. Inputs are a fixed mix of allowed and denied updates.
Latency is wall time per ``decide_update`` call; ``cpu_p50_ms`` is this thread's CPU time,
which stays meaningful on a busy machine. The server is measured from one thread (each call
waits for the last, one kept-alive connection) and from a pool of threads (one kept-alive
connection each), and in bulk (``decide_updates``: 64 updates per request, two threads).

Targets: embedded p99 <= 5 ms; server >= 1000 decisions/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _harness import print_figures

from fedsilo.policy import (
    EmbeddedRegoEngine,
    JobFacts,
    LedgerFacts,
    OpaServerEngine,
    PolicyEngine,
    SiloFacts,
    UpdateFacts,
    UpdatePolicyInput,
    opa_config,
    opa_run_args,
)

ROOT = Path(__file__).resolve().parents[1]


def _inputs(count: int) -> list[UpdatePolicyInput]:
    """Updates of one job: most allowed, some over the norm cap, replayed, stale or over budget."""
    rng = random.Random(1)
    silos = tuple(f"hospital-{i}" for i in range(8))
    inputs = []
    for i in range(count):
        spent = rng.uniform(0, 9)
        inputs.append(
            UpdatePolicyInput(
                job=JobFacts(
                    name="bench", round=12, norm_cap=5.0, max_epsilon=8.0, aggregation="masked",
                    data_class="sensitive", min_samples=10, delta=1e-5, silos=silos,
                ),
                silo=SiloFacts(name=silos[i % 8], enrolled=True, max_epsilon=None),
                update=UpdateFacts(
                    signature_valid=True, round=12 if rng.random() > 0.05 else 11, nonce=f"{i:032x}",
                    l2_norm=rng.uniform(0, 5.5), num_samples=rng.randint(5, 5000), epsilon_round=0.2,
                    payload_digest="sha256:" + f"{i:064x}",
                ),
                ledger=LedgerFacts(
                    nonce_seen=rng.random() < 0.03, seen_nonces=i, epsilon_spent=spent, epsilon_if_accepted=spent + 0.2
                ),
            )
        )  # fmt: skip
    return inputs


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def _sequential(engine: PolicyEngine, inputs: list[UpdatePolicyInput]) -> dict[str, Any]:
    for policy_input in inputs[:100]:  # warm-up: compiled bundle caches, TCP connection
        engine.decide_update(policy_input)
    wall, cpu = [], []
    started = time.perf_counter()
    for policy_input in inputs:
        t0, c0 = time.perf_counter(), time.thread_time()
        engine.decide_update(policy_input)
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    wall.sort()
    cpu.sort()
    return {
        "decisions_per_s": len(inputs) / elapsed,
        "p50_ms": 1e3 * _percentile(wall, 0.50),
        "p99_ms": 1e3 * _percentile(wall, 0.99),
        "cpu_p50_ms": 1e3 * _percentile(cpu, 0.50),
    }


def _concurrent(engine: PolicyEngine, inputs: list[UpdatePolicyInput], threads: int) -> dict[str, Any]:
    def timed(policy_input: UpdatePolicyInput) -> float:
        t0 = time.perf_counter()
        engine.decide_update(policy_input)
        return time.perf_counter() - t0

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(timed, inputs[: threads * 20]))  # one warm connection per thread
        started = time.perf_counter()
        wall = sorted(pool.map(timed, inputs))
        elapsed = time.perf_counter() - started
    return {
        "decisions_per_s": len(inputs) / elapsed,
        "p50_ms": 1e3 * _percentile(wall, 0.50),
        "p99_ms": 1e3 * _percentile(wall, 0.99),
        "cpu_p50_ms": float("nan"),
    }


def _bulk(engine: PolicyEngine, inputs: list[UpdatePolicyInput], threads: int) -> dict[str, Any]:
    """``decide_updates`` over slices of the inputs, one slice per thread; no per-decision latency."""
    engine.decide_updates(inputs[:64])
    slices = [inputs[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        started = time.perf_counter()
        decided = sum(len(d) for d in pool.map(engine.decide_updates, slices))
        elapsed = time.perf_counter() - started
    nan = float("nan")
    return {"decisions_per_s": decided / elapsed, "p50_ms": nan, "p99_ms": nan, "cpu_p50_ms": nan}


def _opa_binary() -> Path:
    if os.environ.get("OPA_BIN"):
        return Path(os.environ["OPA_BIN"])
    located = subprocess.run(["bash", str(ROOT / "scripts" / "tool-path"), "opa"], capture_output=True, text=True)
    if located.returncode != 0:
        raise SystemExit("no opa binary: run scripts/build-tools opa, or set OPA_BIN")
    return Path(located.stdout.strip())


class _OpaServer:
    """``opa run --server`` over policies/ on a free loopback port, configured as in a cluster."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{probe.getsockname()[1]}"
        config = workdir / "opa-config.json"
        config.write_text(json.dumps(opa_config()))
        self.log = workdir / "opa.log"
        args = opa_run_args(ROOT / "policies", config_file=config, address=self.address)
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen([str(_opa_binary()), *args], stdout=sink, stderr=subprocess.STDOUT)

    def wait_ready(self, engine: OpaServerEngine, probe: UpdatePolicyInput) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                engine.decide_update(probe)
                return
            except Exception:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise SystemExit(f"OPA did not start; see {self.log}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    inputs = _inputs(args.decisions)

    embedded = _sequential(EmbeddedRegoEngine(), inputs)
    with tempfile.TemporaryDirectory(prefix="fedsilo-bench-opa-") as workdir:
        server = _OpaServer(Path(workdir))
        try:
            with OpaServerEngine(f"http://{server.address}", timeout_seconds=5.0) as engine:
                server.wait_ready(engine, inputs[0])
                one_thread = _sequential(engine, inputs)
                pooled = _concurrent(engine, inputs, args.threads)
                bulk = _bulk(engine, inputs, 2)
        finally:
            server.stop()

    rows = [
        {"engine": "embedded (rego-cpp)", "threads": 1, **embedded, "target": "p99 <= 5 ms"},
        {"engine": "OPA server", "threads": 1, **one_thread, "target": "-"},
        {"engine": "OPA server", "threads": args.threads, **pooled, "target": ">= 1000/s"},
        {"engine": "OPA server, bulk of 64", "threads": 2, **bulk, "target": ">= 1000/s"},
    ]
    print_figures(f"policy decisions ({args.decisions} updates, {os.cpu_count()} CPUs)", rows)
    print(
        json.dumps(
            {
                "server_over_embedded": {
                    "p50_latency_one_thread": one_thread["p50_ms"] / embedded["p50_ms"],
                    "throughput_pooled": pooled["decisions_per_s"] / embedded["decisions_per_s"],
                    "throughput_bulk": bulk["decisions_per_s"] / embedded["decisions_per_s"],
                },
                "targets_met": {
                    "embedded_p99_le_5ms": embedded["p99_ms"] <= 5.0,
                    "server_ge_1000_per_s": max(pooled["decisions_per_s"], bulk["decisions_per_s"]) >= 1000,
                },
                "load_average": os.getloadavg(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
