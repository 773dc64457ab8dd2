"""Defenses x attacks: final accuracy of whole local runs with malicious silos, as a table and JSON.

    .venv/bin/python benchmarks/bench_robustness.py [--silos 5] [--attackers 1] [--rounds 3]
        [--seeds 3] [--alpha 0.5] [--defenses fedavg median ...] [--attacks none sign_flip ...]
        [--json robustness.json] [--plot robustness.png]

Every cell is a whole ``fedsilo run`` (``LocalRun``: hub, sidecars, sandboxed trainers, mTLS)
of a plain-mode digits job (``fedsilo_testing.attack_runs``) in which the first
``--attackers`` silos run ``fedsilo_testing.attacks``; mean and spread over the seeds. The
sidecars' norm cap and clip range are raised out of the way (a modified sidecar). Each run
takes a minute or more: the full grid (5 defenses x 6 attacks x 3 seeds) is 90 runs, so
start with a few defenses and attacks. ``fedavg_anomaly`` is FedAvg with the policy denying
a silo whose anomaly score is above 5 (docs/robustness.md; the quorum lowered by the
attackers, so denying them does not fail the round). The masked-mode bound on the sum
(``_bounds``) is not a cell: these attackers poison their training, which the sidecar
clips and signs honestly, so the bound never fires; a tampered masked vector is tested
in tests/aggregator/test_masked_bounds.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fedsilo_testing.attack_runs import run_attacked
from fedsilo_testing.attacks import Attack, AttackPlan

DEFENSES: dict[str, dict[str, Any]] = {
    "fedavg": {"name": "fedavg"},
    "median": {"name": "median"},
    "trimmed_mean": {"name": "trimmed_mean", "trimFraction": 0.2},
    "multikrum": {"name": "multikrum"},
    "centered_clipping": {"name": "centered_clipping", "clippingRadius": 1.0, "clippingIterations": 3},
    "fedavg_anomaly": {"name": "fedavg"},
}
# Defenses that are a strategy plus the policy's anomaly limit.
ANOMALY_LIMIT = {"fedavg_anomaly": 5.0}


def _cell(folder: Path, defense: str, attack: Attack, args: argparse.Namespace) -> dict[str, Any]:
    attackers = tuple(f"hospital-{i}" for i in range(args.attackers)) if attack is not Attack.NONE else ()
    strategy = dict(DEFENSES[defense])
    if defense == "multikrum":
        strategy["byzantineSilos"] = args.attackers
    accuracies, seconds = [], []
    for seed in range(args.seeds):
        started = time.monotonic()
        report = run_attacked(
            folder / f"{defense[:2]}{attack.value[:2]}{seed}",
            strategy,
            AttackPlan(attack=attack, attackers=attackers),
            silos=args.silos,
            rounds=args.rounds,
            seed=seed,
            alpha=args.alpha,
            max_anomaly_score=ANOMALY_LIMIT.get(defense),
            min_silos=args.silos - args.attackers if defense in ANOMALY_LIMIT else None,
        )
        if report.status != "succeeded" or report.final_accuracy is None:
            raise SystemExit(f"{defense} x {attack.value} (seed {seed}) failed: {report.failure}")
        accuracies.append(report.final_accuracy)
        seconds.append(time.monotonic() - started)
    return {
        "defense": defense,
        "attack": attack.value,
        "attackers": len(attackers),
        "accuracy_mean": statistics.fmean(accuracies),
        "accuracy_sd": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "accuracies": accuracies,
        "seconds_mean": statistics.fmean(seconds),
    }


def _plot(cells: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Grouped bars: one group per attack, one bar per defense, the seeds' spread as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(1.6 * len(args.attacks) + 2, 4))
    width = 0.8 / len(args.defenses)
    for index, defense in enumerate(args.defenses):
        row = [c for c in cells if c["defense"] == defense]
        positions = [a + index * width for a in range(len(row))]
        means = [c["accuracy_mean"] for c in row]
        spreads = [c["accuracy_sd"] for c in row]
        axes.bar(positions, means, width, yerr=spreads, label=defense, capsize=2)
    axes.set_xticks([a + 0.4 - width / 2 for a in range(len(args.attacks))], args.attacks)
    axes.set_ylabel("final accuracy")
    axes.set_ylim(0, 1)
    axes.set_title(f"{args.attackers} of {args.silos} silos attacking, {args.rounds} rounds")
    axes.legend(fontsize="small", ncol=2)
    figure.tight_layout()
    figure.savefig(args.plot, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--silos", type=int, default=5)
    parser.add_argument("--attackers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--alpha", type=float, default=None, help="Dirichlet label skew; default IID")
    parser.add_argument("--defenses", nargs="+", choices=list(DEFENSES), default=list(DEFENSES))
    parser.add_argument("--attacks", nargs="+", choices=[a.value for a in Attack], default=[a.value for a in Attack])
    parser.add_argument("--json", type=Path, default=None, help="also write the cells here")
    parser.add_argument("--plot", type=Path, default=None, help="also draw the table as grouped bars (PNG)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rb") as directory:
        cells = [
            _cell(Path(directory), defense, Attack(attack), args)
            for defense in args.defenses
            for attack in args.attacks
        ]
    table = Table(title=f"final accuracy, {args.attackers} of {args.silos} silos attacking, {args.rounds} rounds")
    table.add_column("defense")
    for attack in args.attacks:
        table.add_column(attack, justify="right")
    for defense in args.defenses:
        row = [c for c in cells if c["defense"] == defense]
        table.add_row(defense, *(f"{c['accuracy_mean']:.3f} ± {c['accuracy_sd']:.3f}" for c in row))
    Console().print(table)
    document = {"configuration": vars(args) | {"json": str(args.json) if args.json else None}, "cells": cells}
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2))
    if args.plot is not None:
        _plot(cells, args)
    print(json.dumps(document))


if __name__ == "__main__":
    main()
