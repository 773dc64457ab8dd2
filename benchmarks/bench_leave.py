"""Sidecar stopped -> round completed: with the silo's Leave, against the step's deadline without it.

    PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/bench_leave.py [--silos 4] [--timeout 20] [--repeats 3]

A masked job of ``--silos`` silos through the real hub (``fedsilo_testing.loopback_job``: the
coordinator behind its mTLS gRPC server with the embedded Rego gate and audit log, real
sidecars, trainers that answer at once). In round 1 one silo's sidecar is stopped after its
masks were advertised and shared and before its upload: its update's way raises ``Terminated``
where a sidecar process's SIGTERM handler raises it. The figure is the time from that moment to
the hub's record of round 1 (``RoundObserver.round_finished``), which includes recovering the
stopped silo's masks from the others' shares. Measured twice in the same run: the sidecar as it
is, which sends its Leave, and the baseline, the same sidecar without the Leave (as before it
existed), for which the hub waits out the input step's deadline (``--timeout``, the job's
roundTimeoutSeconds). The load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from fedsilo.aggregator import RoundSummary
from fedsilo.api import FederatedJob
from fedsilo.identity import SiloIdentity
from fedsilo.launch import Terminated
from fedsilo.protocol import PolicyVerdict, rpc
from fedsilo.sidecar import Sidecar, SidecarConfig, TrainerLinkService
from fedsilo.sidecar._pipeline import Next, OutgoingUpdate, Step
from fedsilo_testing.loopback_job import MakeSidecar, run_loopback_job


class Clock:
    """When the sidecar was stopped, and when the hub recorded round 1 (a ``RoundObserver``)."""

    def __init__(self) -> None:
        self.stopped = 0.0
        self.recorded = 0.0

    def round_started(self, round_number: int, participants: tuple[str, ...]) -> None:
        """Not timed."""

    def update_decided(self, round_number: int, silo: str, verdict: PolicyVerdict) -> None:
        """Not timed."""

    def round_finished(self, summary: RoundSummary) -> None:
        if summary.round == 1 and not self.recorded:
            self.recorded = time.monotonic()


def _stopped(clock: Clock, leaves: bool) -> MakeSidecar:
    """The stopped silo's sidecar: stopped before its upload; with its Leave, or silent as before the Leave."""

    def stop(update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
        clock.stopped = time.monotonic()
        raise Terminated

    class Stopped(Sidecar):
        def steps(self, stub: rpc.AggregatorStub) -> list[Step]:
            steps = super().steps(stub)
            return [*steps[:-1], stop, steps[-1]]

        def _leave(self, stub: rpc.AggregatorStub) -> None:
            if leaves:
                super()._leave(stub)

    def build(config: SidecarConfig, identity: SiloIdentity, link: TrainerLinkService) -> Sidecar:
        return Stopped(config, identity, link)

    return build


def _job(silos: list[str], timeout: int) -> FederatedJob:
    return FederatedJob.model_validate(
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "FederatedJob",
            "metadata": {"name": "leave"},
            "spec": {
                "silos": silos,
                "minSilos": len(silos) - 1,
                "rounds": 1,
                "roundTimeoutSeconds": timeout,
                "model": {"builtin": "mlp"},
                "aggregation": {"mode": "masked", "clipRange": 1.0},
                "policy": {"normCap": 1e6, "dataClass": "internal"},
            },
        }
    )


def measure(silos: int, size: int, timeout: int, leaves: bool, folder: Path) -> float:
    """Seconds from the stop to round 1's record, in one job."""
    names = [f"silo-{i}" for i in range(silos)]

    def delta(silo: str, round_number: int) -> np.ndarray:
        return np.random.default_rng(names.index(silo)).uniform(-0.5, 0.5, size).astype(np.float32)

    clock = Clock()
    run = run_loopback_job(
        _job(names, timeout),
        {"w": np.zeros(size, np.float32)},
        dict.fromkeys(names, 100),
        delta,
        folder,
        {names[-1]: _stopped(clock, leaves)},
        observer=clock,
    )
    (summary,) = run.summaries
    assert summary.dropped == (names[-1],), summary.dropped
    assert (names[-1] in summary.left) is leaves, summary.left
    return clock.recorded - clock.stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--silos", type=int, default=4)
    parser.add_argument("--size", type=int, default=20_000, help="coordinates of the model (one tensor)")
    parser.add_argument("--timeout", type=int, default=20, help="the job's roundTimeoutSeconds")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"leave": [], "deadline (no leave)": []}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for name, leaves in (("leave", True), ("deadline (no leave)", False)):
                path = Path(folder) / f"{repeat}-{leaves}"
                figures[name].append(measure(args.silos, args.size, args.timeout, leaves, path))
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"{args.silos} silos, masked, {args.size} coordinates, roundTimeoutSeconds {args.timeout}, "
        f"{args.repeats} repeats; load average {load}"
    )
    print("| sidecar stopped -> round completed | median s | runs s |")
    print("|---|---|---|")
    for name, seconds in figures.items():
        runs = ", ".join(f"{s:.3f}" for s in seconds)
        print(f"| {name} | {statistics.median(seconds):.3f} | {runs} |")


if __name__ == "__main__":
    main()
