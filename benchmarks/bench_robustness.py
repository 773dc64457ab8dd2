"""Defenses x attacks: final accuracy of whole local runs with malicious silos, as a table and JSON.

    .venv/bin/python benchmarks/bench_robustness.py [--silos 5] [--attackers 1] [--rounds 3]
        [--seeds 3] [--alpha 0.5] [--defenses fedavg median ...] [--attacks none sign_flip ...]
        [--json robustness.json]

Every cell is a whole ``fedsilo run`` (``LocalRun``: hub, sidecars, sandboxed trainers, mTLS)
of a plain-mode digits job (``fedsilo_testing.attack_runs``) in which the first
``--attackers`` silos run ``fedsilo_testing.attacks``; mean and spread over the seeds. The
sidecars' norm cap and clip range are raised out of the way (a modified sidecar). Each run
takes a minute or more: the full grid (5 defenses x 6 attacks x 3 seeds) is 90 runs, so
start with a few defenses and attacks. Masked-mode defenses (norm bound, sign vote) are not
here: they are the other half of issue 18.
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
}


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
    print(json.dumps(document))


if __name__ == "__main__":
    main()
