"""Round time and upload bytes of the masked sign vote against masked FedAvg, both through the real hub.

    nice -n 19 .venv/bin/python benchmarks/bench_masked_vote_rounds.py [--silos 5] [--rounds 4] [--size 20000]

Both jobs run in this process, one after the other, with the same silos and the same updates
(``fedsilo_testing.loopback_job``: the coordinator behind its mTLS gRPC server with the
embedded Rego gate and audit log, real sidecars, trainers that answer at once), so what
differs is the aggregation: masked FedAvg (fixed-point 32-bit words and a weight word) is
the baseline measured in the same run, the masked sign vote (2-bit levels in
``2 + ceil(log2 n)``-bit packed words, range-checked tally) the defense. The figures are
the median round seconds (the hub's, from opening to record: setup steps, uploads,
admission, unmasking, the step) and the bytes one silo uploads per round. This is the
"cost in round time" column of docs/robustness.md for the vote, measured end to end rather
than in the simulation of benchmarks/bench_robustness.py.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

from fedsilo.api import FederatedJob
from fedsilo_testing.loopback_job import run_loopback_job


def _job(name: str, strategy: str, silos: list[str], rounds: int) -> FederatedJob:
    return FederatedJob.model_validate(
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "FederatedJob",
            "metadata": {"name": name},
            "spec": {
                "silos": silos,
                "minSilos": len(silos),
                "rounds": rounds,
                "roundTimeoutSeconds": 120,
                "model": {"builtin": "mlp"},
                "strategy": {"name": strategy},
                "aggregation": {"mode": "masked", "clipRange": 1.0},
                "policy": {"normCap": 1e6, "dataClass": "internal"},
            },
        }
    )


def main() -> None:
    """Run both jobs and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--silos", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--size", type=int, default=20_000, help="coordinates of the model (one tensor)")
    args = parser.parse_args()
    silos = [f"silo-{i}" for i in range(args.silos)]
    weights = {"w": np.zeros(args.size, np.float32)}
    records = {silo: 100 for silo in silos}

    def delta(silo: str, round_number: int) -> np.ndarray:
        rng = np.random.default_rng(1000 * round_number + silos.index(silo))
        return rng.uniform(-0.5, 0.5, args.size).astype(np.float32)

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for strategy in ("fedavg", "sign_vote"):
            run = run_loopback_job(
                _job(strategy.replace("_", "-"), strategy, silos, args.rounds),
                weights,
                records,
                delta,
                Path(folder) / strategy,
            )
            seconds = statistics.median(s.seconds for s in run.summaries)
            sent = statistics.median(st.upload_bytes for s in run.summaries for st in s.silos.values())
            rows.append((strategy, seconds, int(sent)))
    base_seconds, base_bytes = rows[0][1], rows[0][2]
    print(f"{args.silos} silos, {args.rounds} rounds, {args.size} coordinates, masked aggregation")
    print("| strategy | median round s | vs fedavg | bytes/silo/round | vs fedavg |")
    print("|---|---|---|---|---|")
    for strategy, seconds, sent in rows:
        print(f"| `{strategy}` | {seconds:.3f} | x{seconds / base_seconds:.2f} | {sent} | x{sent / base_bytes:.3f} |")


if __name__ == "__main__":
    main()
