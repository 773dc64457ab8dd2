"""Federated vs centralized accuracy per preprocessing choice, partition and seed; DP on the larger workload.

    .venv/bin/python benchmarks/bench_preprocessing.py [--seeds 0 1 2] [--part all|grid|dp] [--out DIR]

Part 1: for each bundled tabular data set (breast_cancer, and the generated ``tabular``
workload: 4 silos x 1,500 records, features on scales 1e-2..1e4), under IID, Dirichlet 0.5
and Dirichlet 0.1 label skew, with per-silo standardization (``scaling: silo``) and with
federated standardization (``scaling: standardize``, fitted by the real statistics phase:
masked secure aggregation of the silos' totals over the aggregator's mTLS gRPC service), over 3 seeds: the federated model's
held-out accuracy (mean over seeds), the worst silo's accuracy, the spread (std) of silo
accuracies, and the centralized baseline trained on the pooled records with the same
transform. digits is left out: its pixels have a fixed, public range and no preprocessing
choice to compare.

Part 2: record-level DP-SGD on the larger workload (4 silos x 5,000 records), at epsilon 1,
3 and 8 (delta 1e-5, the noise calibrated by the sidecar's own planner from each silo's
record count) next to the same job without DP.

Federated figures come from FedAvg simulated in one process (``fedsilo_testing.simulation``:
the trainers' own clients on the data ``load_silo_data`` gives them, a plain weighted mean
in place of masking, which changes no figure; tests/e2e/test_modes_learn_the_same.py checks
that masked and plain runs agree). A whole ``fedsilo run`` per point would make the grid
take hours on two cores. Writes ``preprocessing-<part>.json`` and ``.png`` into --out.
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
from fedsilo.baseline import train_centralized
from fedsilo.datasets import FittedPreprocessing
from fedsilo.identity import SigningKey
from fedsilo.runner import run_statistics
from fedsilo.statistics import job_silos
from fedsilo_testing.simulation import simulate_fedavg

SILOS = ["a", "b", "c", "d"]
PARTITIONS = {"iid": {"scheme": "iid"}, "dir0.5": {"scheme": "dirichlet", "alpha": 0.5}}
PARTITIONS["dir0.1"] = {"scheme": "dirichlet", "alpha": 0.1}
DATASETS: dict[str, dict[str, Any]] = {
    "breast_cancer": {"source": "breast_cancer"},
    "tabular": {"source": "tabular", "tabular": {"recordsPerSilo": 1500, "numCategorical": 0}},
}
TRAINING = {"localEpochs": 1, "batchSize": 64, "learningRate": 0.1}
DP_TRAINING = {"localEpochs": 1, "batchSize": 256, "learningRate": 0.5, "momentum": 0.5}


def _spec(data: dict[str, Any], partition: dict[str, Any], scaling: str, seed: int, **extra: Any) -> FederatedJobSpec:
    return FederatedJobSpec.model_validate(
        {
            "silos": SILOS,
            "minSilos": 3,
            "rounds": extra.pop("rounds", 10),
            "seed": seed,
            "model": {"builtin": "logistic_regression"},
            # minCount 5: breast_cancer under Dirichlet 0.1 deals some silos barely 10 records.
            "data": {**data, "partition": partition, "preprocessing": {"scaling": scaling, "minCount": 5}},
            "training": extra.pop("training", TRAINING),
            **extra,
        }
    )


def _fitted(spec: FederatedJobSpec) -> FittedPreprocessing | None:
    preprocessing = spec.data.preprocessing
    if preprocessing is None or not preprocessing.federated:
        return None
    keys = {name: SigningKey.generate() for name in spec.silos}
    # The hub's own fit, from the totals it unmasked over the aggregator's gRPC service.
    return run_statistics(f"bench-{spec.seed}", spec, job_silos(spec, keys)).preprocessing


def _point(spec: FederatedJobSpec) -> dict[str, float]:
    fitted = _fitted(spec)
    run = simulate_fedavg(spec, fitted)
    centralized = train_centralized(spec, len(spec.silos), None, fitted).accuracy
    return {
        "federated": run.accuracy[-1],
        "worst_silo": min(run.silo_accuracy),
        "silo_spread": float(np.std(run.silo_accuracy)),
        "centralized": centralized,
    }


def preprocessing_grid(seeds: list[int]) -> list[dict[str, Any]]:
    """Part 1: one row per data set, partition and scaling, averaged over ``seeds``."""
    rows = []
    for dataset, data in DATASETS.items():
        for partition_name, partition in PARTITIONS.items():
            for scaling in ("silo", "standardize"):
                points = [_point(_spec(data, partition, scaling, seed)) for seed in seeds]
                mean = {key: float(np.mean([p[key] for p in points])) for key in points[0]}
                rows.append(
                    {
                        "dataset": dataset,
                        "partition": partition_name,
                        "scaling": scaling,
                        **mean,
                        "fed/central": mean["federated"] / mean["centralized"],
                        "seed_std": float(np.std([p["federated"] for p in points])),
                    }
                )
    return rows


def dp_grid(seeds: list[int], epsilons: list[float | None]) -> list[dict[str, Any]]:
    """Part 2: record-level DP-SGD on 4 x 5,000 records, federated standardization, Dirichlet 0.5."""
    data = {"source": "tabular", "tabular": {"recordsPerSilo": 5000, "numCategorical": 0}}
    rows = []
    for epsilon in epsilons:
        privacy = (
            {"privacy": {"mode": "record", "targetEpsilon": epsilon, "maxGradNorm": 1.0, "delta": 1e-5}}
            if epsilon is not None
            else {}
        )
        points = [
            _point(_spec(data, PARTITIONS["dir0.5"], "standardize", seed, training=DP_TRAINING, **privacy))
            for seed in seeds
        ]
        mean = {key: float(np.mean([p[key] for p in points])) for key in points[0]}
        rows.append({"epsilon": "none" if epsilon is None else f"{epsilon:g}", **mean})
    return rows


def _plot(grid: list[dict[str, Any]], dp: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(DATASETS) + 1, figsize=(4.2 * (len(DATASETS) + 1), 3.4))
    for axis, dataset in zip(axes, DATASETS if grid else (), strict=False):
        for scaling, offset in (("silo", -0.2), ("standardize", 0.2)):
            rows = [r for r in grid if r["dataset"] == dataset and r["scaling"] == scaling]
            x = np.arange(len(rows)) + offset
            axis.bar(x, [r["fed/central"] for r in rows], width=0.4, label=scaling)
        axis.axhline(0.97, color="black", linewidth=0.8, linestyle="--")
        axis.set_xticks(range(len(PARTITIONS)), list(PARTITIONS))
        axis.set_title(f"{dataset}: federated / centralized", fontsize=9)
        axis.set_ylim(0, 1.1)
        axis.legend(fontsize=7)
    axis = axes[-1]
    axis.bar([r["epsilon"] for r in dp], [r["federated"] for r in dp], label="federated")
    axis.plot([r["epsilon"] for r in dp], [r["worst_silo"] for r in dp], "o", color="red", label="worst silo")
    axis.set_title("DP-SGD, tabular 4 x 5000 records", fontsize=9)
    axis.set_xlabel("epsilon")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    """Run both parts and write the JSON and the plot."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/preprocessing"))
    parser.add_argument("--part", choices=("all", "grid", "dp"), default="all", help="run one part only")
    args = parser.parse_args()
    started = time.monotonic()
    grid = preprocessing_grid(args.seeds) if args.part in ("all", "grid") else []
    if grid:
        print_figures("federated vs centralized accuracy by preprocessing", grid)
    grid_seconds = time.monotonic() - started
    dp = dp_grid(args.seeds, [None, 8.0, 3.0, 1.0]) if args.part in ("all", "dp") else []
    if dp:
        print_figures("DP-SGD on the tabular workload (4 silos x 5,000 records)", dp)
    seconds = time.monotonic() - started
    args.out.mkdir(parents=True, exist_ok=True)
    document = {"seeds": args.seeds, "grid": grid, "dp": dp, "seconds": {"grid": grid_seconds, "total": seconds}}
    (args.out / f"preprocessing-{args.part}.json").write_text(json.dumps(document, indent=2))
    _plot(grid, dp, args.out / f"preprocessing-{args.part}.png")
    print(f"{seconds:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
