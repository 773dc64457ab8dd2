"""What the statistics phase costs on its real path, next to computing the same statistics on pooled records.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_statistics.py [--records 1500 5000] [--out DIR]

Each row runs ``fedsilo.runner.run_statistics`` once: the aggregator's statistics service
on loopback with mutual TLS, four silo clients each with its own certificate and identity
key, two passes of masked secure aggregation, every upload signed, checked, decided by the
embedded policy and written to an audit log. The baseline, measured in the same run on the
same records, is what a central party holding the pooled records would compute with numpy
(count, mean, variance, min/max and a 32-bin histogram per feature): the price of never
pooling them. Also reported: the masked words each silo uploads per pass, and how far the
federated means are from numpy's (in standard deviations; exact up to 2^-32 without DP).
Writes ``statistics-phase.json`` into --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from _harness import print_figures

from fedsilo.api import FederatedJobSpec
from fedsilo.identity import SigningKey
from fedsilo.runner import run_statistics
from fedsilo.statistics import PASSES, StatisticsPlan, job_silos

SILOS = ["a", "b", "c", "d"]


def _spec(records: int, epsilon: float | None) -> FederatedJobSpec:
    preprocessing: dict[str, Any] = {"scaling": "standardize", "bins": 32}
    if epsilon is not None:
        preprocessing["epsilon"] = epsilon
    return FederatedJobSpec.model_validate(
        {
            "silos": SILOS,
            "minSilos": 3,
            "rounds": 1,
            "seed": 0,
            "model": {"builtin": "logistic_regression"},
            "data": {
                "source": "tabular",
                "tabular": {"recordsPerSilo": records, "numCategorical": 0},
                "partition": {"scheme": "dirichlet", "alpha": 0.5},
                "preprocessing": preprocessing,
            },
        }
    )


def _pooled_statistics(pooled: np.ndarray) -> dict[str, np.ndarray]:
    """The baseline: what a party holding every record computes directly."""
    return {
        "count": np.array(len(pooled)),
        "mean": pooled.mean(axis=0),
        "variance": pooled.var(axis=0),
        "min": pooled.min(axis=0),
        "max": pooled.max(axis=0),
        "histograms": np.stack([np.histogram(pooled[:, c], bins=32)[0] for c in range(pooled.shape[1])]),
    }


def measure(records: int, epsilon: float | None) -> dict[str, Any]:
    """One row: the phase over mTLS gRPC, and the pooled numpy baseline on the same records."""
    spec = _spec(records, epsilon)
    silos = job_silos(spec, {name: SigningKey.generate() for name in spec.silos})
    pooled = np.concatenate([s.records for s in silos]).astype(np.float64)
    started = time.perf_counter()
    baseline = _pooled_statistics(pooled)
    baseline_seconds = time.perf_counter() - started
    started = time.perf_counter()
    release = run_statistics(f"bench-{records}", spec, silos)
    phase_seconds = time.perf_counter() - started
    plan = StatisticsPlan.for_job("bench", spec, pooled.shape[1])
    spread = np.sqrt(baseline["variance"])
    errors = [
        abs(feature.mean - baseline["mean"][feature.column]) / spread[feature.column]
        for feature in release.statistics.numeric
        if feature.mean is not None
    ]
    return {
        "records/silo": records,
        "epsilon": "none" if epsilon is None else f"{epsilon:g}",
        "phase s (gRPC mTLS)": phase_seconds,
        "pooled numpy s": baseline_seconds,
        "ratio": phase_seconds / baseline_seconds,
        "KiB up/silo": sum(plan.words(p) * 4 for p in PASSES) / 1024,
        "max mean error (std)": float(max(errors)),
    }


def main() -> None:
    """Measure each size with and without DP; print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[1500, 5000])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    rows = [measure(records, epsilon) for records in args.records for epsilon in (None, 1.0)]
    print_figures("statistics phase over the aggregator's gRPC service (4 silos, 14 features, 2 passes)", rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "statistics-phase.json").write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.out / 'statistics-phase.json'}")


if __name__ == "__main__":
    main()
