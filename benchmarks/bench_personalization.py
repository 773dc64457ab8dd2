"""Quality for every partner: mean, worst silo and spread of per-silo accuracy, with and without personalization.

    .venv/bin/python benchmarks/bench_personalization.py [--silos 5] [--rounds 10] [--seeds 3]
        [--alphas 0.5 0.1] [--datasets digits breast_cancer] [--methods fedavg fedper fedbn fine_tune]
        [--json personalization.json] [--plot personalization.png]

Every cell trains a whole job per seed with the trainer's own clients, the hub's strategy and
the hub's ``ModelQuality`` in one process (``fedsilo_testing.personalization.simulate``: the
same arithmetic as a plain-mode local run, without the transport), on a bundled data set
split across ``--silos`` silos by a Dirichlet(alpha) label skew. Each silo scores the final
model on its own held-out split; the figures are the record-weighted mean, the worst silo
and the standard deviation across silos, each averaged over the seeds (with their spread
across seeds). Methods:

- ``fedavg``: the federated model, no personalization (the baseline);
- ``fedper``: the classifier head stays in each silo (``privateHead``);
- ``fedbn``: the mlp with batch normalization, whose layers stay in each silo (``privateNormalization``);
  its baseline is ``fedavg`` on the same normalized model (``fedavg_bn``), run alongside;
- ``fine_tune``: the federated model fine-tuned for ``--fine-tune-epochs`` epochs in each silo.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fedsilo_testing.personalization import job_spec, simulate

METHODS = ("fedavg", "fedper", "fedbn", "fine_tune")


def _spec(dataset: str, alpha: float, seed: int, method: str, args: argparse.Namespace) -> dict[str, Any]:
    normalized = method in ("fedbn", "fedavg_bn")
    spec: dict[str, Any] = {
        "silos": [f"silo-{i}" for i in range(args.silos)],
        "minSilos": 2,
        "rounds": args.rounds,
        "seed": seed,
        "model": {"builtin": "mlp", "hiddenSizes": [64], **({"normalization": "batch"} if normalized else {})},
        "data": {"source": dataset, "partition": {"scheme": "dirichlet", "alpha": alpha}},
        "training": {"localEpochs": 1, "batchSize": 32, "learningRate": 0.05, "momentum": 0.9},
        "aggregation": {"mode": "plain"},
        "policy": {"normCap": 20.0},
    }
    personalization = {
        "fedper": {"privateHead": True},
        "fedbn": {"privateNormalization": True},
        "fine_tune": {"fineTuneEpochs": args.fine_tune_epochs},
    }.get(method)
    if personalization:
        spec["personalization"] = personalization
    return spec


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _cell(dataset: str, alpha: float, method: str, args: argparse.Namespace) -> dict[str, Any]:
    means, worsts, spreads, seconds = [], [], [], []
    for seed in range(args.seeds):
        started = time.monotonic()
        result = simulate(job_spec(**_spec(dataset, alpha, seed, method, args)))
        quality = result.personalized or result.federated
        means.append(quality.mean_accuracy)
        worsts.append(quality.worst_accuracy)
        spreads.append(quality.accuracy_std)
        seconds.append(time.monotonic() - started)
    mean, mean_sd = _mean_sd(means)
    worst, worst_sd = _mean_sd(worsts)
    spread, spread_sd = _mean_sd(spreads)
    return {
        "dataset": dataset,
        "alpha": alpha,
        "method": method,
        "seeds": args.seeds,
        "mean_accuracy": mean,
        "mean_accuracy_sd": mean_sd,
        "worst_accuracy": worst,
        "worst_accuracy_sd": worst_sd,
        "accuracy_spread": spread,
        "accuracy_spread_sd": spread_sd,
        "per_seed": {"mean": means, "worst": worsts, "spread": spreads},
        "seconds_per_run": statistics.fmean(seconds),
    }


def _table(cells: list[dict[str, Any]]) -> Table:
    table = Table(title="per-silo accuracy of the final model (mean over seeds ± sd across seeds)")
    for column in ("data set", "alpha", "method", "mean", "worst silo", "spread (sd across silos)"):
        table.add_column(column, justify="left" if column in ("data set", "method") else "right")
    for c in cells:
        table.add_row(
            c["dataset"],
            f"{c['alpha']:g}",
            c["method"],
            f"{c['mean_accuracy']:.3f} ± {c['mean_accuracy_sd']:.3f}",
            f"{c['worst_accuracy']:.3f} ± {c['worst_accuracy_sd']:.3f}",
            f"{c['accuracy_spread']:.3f} ± {c['accuracy_spread_sd']:.3f}",
        )
    return table


def _plot(cells: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(c["dataset"], c["alpha"]) for c in cells}, key=lambda g: (g[0], -g[1]))
    methods = list(dict.fromkeys(c["method"] for c in cells))
    figure, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 4.2), dpi=110, squeeze=False)
    width = 0.8 / len(methods)
    for axis, (dataset, alpha) in zip(axes[0], groups, strict=True):
        for index, method in enumerate(methods):
            cell = next(c for c in cells if (c["dataset"], c["alpha"], c["method"]) == (dataset, alpha, method))
            x = [0 + index * width, 1 + index * width]
            axis.bar(
                x,
                [cell["mean_accuracy"], cell["worst_accuracy"]],
                width,
                yerr=[cell["mean_accuracy_sd"], cell["worst_accuracy_sd"]],
                label=method,
                capsize=2,
            )
        axis.set_xticks([0.4 - width / 2, 1.4 - width / 2], ["mean", "worst silo"])
        axis.set_ylim(0, 1)
        axis.set_title(f"{dataset}, Dirichlet {alpha:g}")
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("accuracy on each silo's held-out split")
    axes[0][-1].legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--silos", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 0.1])
    parser.add_argument(
        "--datasets", nargs="+", choices=["digits", "breast_cancer"], default=["digits", "breast_cancer"]
    )
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--json", type=Path, default=Path("personalization.json"))
    parser.add_argument("--plot", type=Path, default=Path("personalization.png"))
    args = parser.parse_args()
    methods = [m for method in args.methods for m in (("fedavg_bn", method) if method == "fedbn" else (method,))]
    cells = [
        _cell(dataset, alpha, method, args) for dataset in args.datasets for alpha in args.alphas for method in methods
    ]
    Console(width=120).print(_table(cells))
    args.json.write_text(
        json.dumps(
            {"settings": vars(args) | {"json": str(args.json), "plot": str(args.plot)}, "cells": cells}, indent=2
        )
    )
    _plot(cells, args.plot)
    print(f"json: {args.json}\nplot: {args.plot}")


if __name__ == "__main__":
    main()
