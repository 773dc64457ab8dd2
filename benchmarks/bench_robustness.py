"""Defenses x attacks x attackers: final accuracy over seeds, the cost of each defense, as tables, JSON and a plot.

    nice -n 19 .venv/bin/python benchmarks/bench_robustness.py [--silos 10] [--rounds 10] [--seeds 3]
        [--alpha 0.5] [--attackers 1 2 3] [--defenses fedavg median ...] [--attacks sign_flip ...]
        [--json docs/robustness.json] [--plot docs/robustness.png]

Every cell runs in this process (``fedsilo_testing.robust_simulation``): the silos are the
attack fixtures' clients on a Dirichlet split of digits, the hub's side is the shipped
strategies, anomaly scores, and the masked sign vote's packing and range check. The
baseline is measured in the same run: FedAvg without attack. For each defense the table
gives the accuracy without attack (its cost is the difference to that baseline), the
accuracy under every attack with 1, 2 and 3 attackers (mean ± standard deviation over the
seeds), the hub's seconds per round and the bytes one silo sends per round. Progress goes
to stderr, one line per run; the JSON is rewritten after every cell, so an interrupted run
keeps what it measured. The whole grid (8 defenses x (1 + 5 attacks x 3 counts) x 3 seeds,
384 runs) took 100 s of one core (docs/robustness.md has the table).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fedsilo_testing.attacks import Attack
from fedsilo_testing.robust_simulation import DEFENSES, Scenario, simulate

ATTACKS = [a.value for a in Attack if a is not Attack.NONE]


def _cells(args: argparse.Namespace) -> list[tuple[str, Attack, int]]:
    """Every (defense, attack, attackers) the grid asks for: no attack once, each attack at each count."""
    return [
        (defense, attack, count)
        for defense in args.defenses
        for attack, count in [(Attack.NONE, 0), *((Attack(a), k) for a in args.attacks for k in args.attackers)]
    ]


def _measure(cell: tuple[str, Attack, int], args: argparse.Namespace, done: int, runs: int) -> dict[str, Any]:
    defense, attack, count = cell
    accuracies, server, seconds, sent, denied = [], [], [], [], []
    for seed in range(args.seeds):
        started = time.monotonic()
        run = simulate(Scenario(defense, attack, count, seed, args.silos, args.rounds, args.alpha, numpy_model=True))
        seconds.append(time.monotonic() - started)
        accuracies.append(run.final_accuracy)
        server.append(statistics.fmean(r.server_seconds for r in run.rounds))
        sent.append(run.rounds[-1].bytes_per_silo)
        denied.append(sum(len(r.denied) for r in run.rounds))
        done += 1
        print(
            f"[{done}/{runs}] {defense} x {attack.value} x {count}, seed {seed}: "
            f"accuracy {run.final_accuracy:.3f} in {seconds[-1]:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return {
        "defense": defense,
        "attack": attack.value,
        "attackers": count,
        "accuracy_mean": statistics.fmean(accuracies),
        "accuracy_sd": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "accuracies": accuracies,
        "server_seconds_per_round": statistics.fmean(server),
        "run_seconds": statistics.fmean(seconds),
        "bytes_per_silo_per_round": max(sent),
        "denials": denied,
    }


def _find(cells: list[dict[str, Any]], defense: str, attack: str, count: int) -> dict[str, Any] | None:
    return next((c for c in cells if (c["defense"], c["attack"], c["attackers"]) == (defense, attack, count)), None)


def _tables(cells: list[dict[str, Any]], args: argparse.Namespace) -> list[Table]:
    """One table of costs (no attack), then one per attacker count."""
    baseline = _find(cells, "fedavg", "none", 0)
    cost = Table(
        title=f"no attack: {args.silos} silos, Dirichlet {args.alpha}, {args.rounds} rounds, {args.seeds} seeds"
    )
    for column in ("defense", "accuracy", "cost vs fedavg", "hub ms/round", "bytes/silo/round"):
        cost.add_column(column, justify="left" if column == "defense" else "right")
    for defense in args.defenses:
        cell = _find(cells, defense, "none", 0)
        if cell is None:
            continue
        drop = "" if baseline is None else f"{baseline['accuracy_mean'] - cell['accuracy_mean']:+.3f}"
        cost.add_row(
            defense,
            f"{cell['accuracy_mean']:.3f} ± {cell['accuracy_sd']:.3f}",
            drop,
            f"{1000 * cell['server_seconds_per_round']:.2f}",
            str(cell["bytes_per_silo_per_round"]),
        )
    tables = [cost]
    for count in args.attackers:
        table = Table(title=f"final accuracy, {count} of {args.silos} silos attacking (mean ± sd over seeds)")
        table.add_column("defense")
        for attack in args.attacks:
            table.add_column(attack, justify="right")
        for defense in args.defenses:
            row = [_find(cells, defense, attack, count) for attack in args.attacks]
            table.add_row(defense, *(f"{c['accuracy_mean']:.3f} ± {c['accuracy_sd']:.3f}" if c else "" for c in row))
        tables.append(table)
    return tables


def _plot(cells: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """One panel per attacker count: a group of bars per attack, one per defense, the seeds' spread as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, panels = plt.subplots(len(args.attackers), 1, figsize=(12, 3.2 * len(args.attackers)), squeeze=False)
    width = 0.8 / len(args.defenses)
    baseline = _find(cells, "fedavg", "none", 0)
    for panel, count in zip(panels[:, 0], args.attackers, strict=True):
        for index, defense in enumerate(args.defenses):
            row = [_find(cells, defense, attack, count) for attack in args.attacks]
            positions = [a + index * width for a, c in enumerate(row) if c]
            panel.bar(
                positions,
                [c["accuracy_mean"] for c in row if c],
                width,
                yerr=[c["accuracy_sd"] for c in row if c],
                label=defense,
                capsize=2,
            )
        if baseline is not None:
            panel.axhline(baseline["accuracy_mean"], color="black", linestyle="--", linewidth=1)
        panel.set_xticks([a + 0.4 - width / 2 for a in range(len(args.attacks))], args.attacks)
        panel.set_ylim(0, 1)
        panel.set_ylabel("final accuracy")
        panel.set_title(f"{count} of {args.silos} silos attacking (dashed: fedavg without attack)")
    panels[0, 0].legend(fontsize="small", ncol=4, loc="lower left")
    figure.tight_layout()
    figure.savefig(args.plot, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--silos", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=0.5, help="Dirichlet label skew (non-IID)")
    parser.add_argument("--attackers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--defenses", nargs="+", choices=list(DEFENSES), default=list(DEFENSES))
    parser.add_argument("--attacks", nargs="+", choices=ATTACKS, default=ATTACKS)
    parser.add_argument("--json", type=Path, default=None, help="write the cells here (after every cell)")
    parser.add_argument("--plot", type=Path, default=None, help="draw the attacked cells as grouped bars (PNG)")
    args = parser.parse_args()
    import torch

    # One thread: the machine is shared, and a small model gains nothing from more.
    torch.set_num_threads(1)
    grid = _cells(args)
    runs = len(grid) * args.seeds
    cells: list[dict[str, Any]] = []
    started = time.monotonic()
    for cell in grid:
        cells.append(_measure(cell, args, len(cells) * args.seeds, runs))
        if args.json is not None:
            configuration = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
            document = {"configuration": configuration, "seconds": time.monotonic() - started, "cells": cells}
            args.json.write_text(json.dumps(document, indent=1) + "\n")
    console = Console(width=200)
    for table in _tables(cells, args):
        console.print(table)
    if args.plot is not None:
        _plot(cells, args)


if __name__ == "__main__":
    main()
