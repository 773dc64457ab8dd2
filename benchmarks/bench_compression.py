"""Compression on the quickstart, through the real run: bytes up per silo per round against
float32, accuracy after the quickstart's rounds, round time.

    .venv/bin/python benchmarks/bench_compression.py [--seeds 7] [--out benchmarks/results/compression]

Every figure is a whole ``fedsilo run`` (``LocalRun``: per-silo sidecar and trainer
processes, mutual TLS, the policy gate) of ``examples/quickstart.yaml`` (3 silos) with its
seed replaced and ``spec.compression`` set; the masked settings are compared with masked
float32 (32-bit fixed point), the plain ones with plain float32. Two byte ratios: the update
payload alone (what compression shrinks: packed words, with the masked sum's headroom for
the run's 3 silos) and the whole uplink of a round (metadata, key adverts, shares and
unmasking included, which compression does not touch and which weigh a lot next to this
5k-parameter model). The goals are stated for 10 silos; the last ratio column is the
payload a round of 10 silos sends with the same settings (``fedsilo.compression``'s sizes,
headroom for 10 counted). Writes a table, ``compression.json`` and ``compression.png``.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import yaml
from _harness import print_figures

from fedsilo.aggregator import CompressionPlanner
from fedsilo.api import FederatedJobSpec, load_manifest
from fedsilo.compression import masked_payload_size, plain_payload_size
from fedsilo.runner import LocalRun, RunOptions, RunReport

QUICKSTART = Path(__file__).parents[1] / "examples" / "quickstart.yaml"
GOAL_SILOS = 10

# (name, aggregation mode, spec.compression or None, goal for the 10-silo payload ratio)
SETTINGS: list[tuple[str, str, dict[str, Any] | None, float | None]] = [
    ("masked float32", "masked", None, None),
    ("masked 8-bit + EF", "masked", {"bits": 8}, 0.4),
    ("masked 4-bit + EF", "masked", {"bits": 4}, 0.26),
    # 4 bits over clipRange 4.0 is a step of 0.53, far above this model's update coordinates:
    # a range near the updates' size (what is cut waits in the error feedback) keeps the step small.
    ("masked 4-bit + EF, valueRange 0.25", "masked", {"bits": 4, "valueRange": 0.25}, 0.26),
    ("masked subset 10% 8-bit + EF", "masked", {"bits": 8, "subset": 0.1}, 0.12),
    ("plain float32", "plain", None, None),
    ("plain top-k 1% + EF", "plain", {"topK": 0.01}, 0.03),
    # Partial error feedback: local training re-learns much of what the residual holds (docs/compression.md).
    ("plain top-k 1% + EF 0.7", "plain", {"topK": 0.01, "errorFeedbackFraction": 0.7}, 0.03),
]


def _manifest(folder: Path, seed: int, name: str, mode: str, compression: dict[str, Any] | None) -> Path:
    documents = list(yaml.safe_load_all(QUICKSTART.read_text()))
    job = copy.deepcopy(documents[0])
    job["spec"]["seed"] = seed
    # Generous on a loaded machine (silos get this long to start and join); no round waits for it.
    job["spec"]["roundTimeoutSeconds"] = 900
    job["spec"]["aggregation"]["mode"] = mode
    # The job policy allows plain aggregation only below "sensitive": every setting runs as "internal".
    job["spec"]["policy"]["dataClass"] = "internal"
    if compression is not None:
        job["spec"]["compression"] = compression
    # Short: the trainer's Unix socket lives under this name, and socket paths end at 108 bytes.
    path = folder / f"s{[s[0] for s in SETTINGS].index(name)}-seed{seed}.yaml"
    path.write_text(yaml.safe_dump_all([job, *documents[1:]], sort_keys=False))
    return path


def _run(folder: Path, path: Path) -> RunReport:
    # The trainers' sandbox is not what this measures (and needs a venv other uids can read).
    options = RunOptions(
        manifest_path=path, workdir=folder / path.stem, registry=folder / "registry", baseline=False, isolate=False
    )
    report = LocalRun(load_manifest(path), options).execute()
    if report.status != "succeeded":
        raise RuntimeError(f"{path.name}: {report.failure}")
    return report


def _per_silo_round(report: RunReport, field: str) -> float:
    values = [v for row in report.rounds for v in getattr(row, field).values()]
    return float(np.mean(values))


def _measure(folder: Path, seed: int, name: str, mode: str, compression: dict[str, Any] | None) -> dict[str, float]:
    report = _run(folder, _manifest(folder, seed, name, mode, compression))
    return {
        "accuracy": report.final_accuracy or 0.0,
        "payload": _per_silo_round(report, "payload_up"),
        "uplink": _per_silo_round(report, "bytes_up"),
        "seconds": float(np.median([r.seconds for r in report.rounds])),
    }


def _ten_silo_payload(spec: FederatedJobSpec, length: int) -> int:
    """Payload bytes of one silo in a round of ``GOAL_SILOS`` silos with ``spec``'s settings."""
    silos = tuple(f"s{i}" for i in range(GOAL_SILOS))
    masked = spec.aggregation.mode.value == "masked"
    if spec.compression is None:
        return 4 * (length + 1)
    ten = spec.model_copy(update={"silos": list(silos)})
    settings = CompressionPlanner(ten, length).plan(1, silos, dict.fromkeys(silos, 300)).settings
    return (masked_payload_size if masked else plain_payload_size)(settings, length)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7], help="job seeds (data split, init)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/compression"), help="output folder")
    args = parser.parse_args()
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    # Each run's figures are kept as they come, so an interrupted benchmark resumes where it stopped.
    done_path = args.out / "runs.json"
    done: dict[str, dict[str, float]] = json.loads(done_path.read_text()) if done_path.exists() else {}
    measured: dict[str, dict[str, list[float]]] = {}
    specs: dict[str, FederatedJobSpec] = {}
    with tempfile.TemporaryDirectory(prefix="fedsilo-bench-compression-") as scratch:
        folder = Path(scratch)
        for seed in args.seeds:
            for name, mode, compression, _ in SETTINGS:
                key = f"{name} | seed {seed}"
                if key not in done:
                    done[key] = _measure(folder, seed, name, mode, compression)
                    done_path.write_text(json.dumps(done, indent=2) + "\n")
                for figure, value in done[key].items():
                    measured.setdefault(name, {}).setdefault(figure, []).append(value)
                specs[name] = load_manifest(_manifest(folder, seed, name, mode, compression)).job.spec
                print(f"# {key}: accuracy {done[key]['accuracy']:.4f}", flush=True)
    # A float32 payload is the model's values plus the weight, 4 bytes each.
    length = round(np.mean(measured["masked float32"]["payload"]) / 4) - 1
    rows = []
    for name, mode, _, goal in SETTINGS:
        figures = measured[name]
        reference = measured[f"{mode} float32"]
        ratio_ten = _ten_silo_payload(specs[name], length) / _ten_silo_payload(specs[f"{mode} float32"], length)
        rows.append(
            {
                "setting": name,
                "payload B/silo/round": float(np.mean(figures["payload"])),
                "payload vs float32 (3 silos)": float(np.mean(figures["payload"]) / np.mean(reference["payload"])),
                "uplink vs float32 (3 silos)": float(np.mean(figures["uplink"]) / np.mean(reference["uplink"])),
                f"payload vs float32 ({GOAL_SILOS} silos)": ratio_ten,
                "goal": "-" if goal is None else f"<= {goal}",
                "met": "-" if goal is None else ("yes" if ratio_ten <= goal else "NO"),
                "accuracy": float(np.mean(figures["accuracy"])),
                "points vs float32": f"{100 * (np.mean(figures['accuracy']) - np.mean(reference['accuracy'])):+.1f}",
                "median round s": float(np.mean(figures["seconds"])),
            }
        )
    title = f"compression on the quickstart (3 silos, 15 rounds), seeds {args.seeds}"
    print_figures(title, rows)
    (args.out / "compression.json").write_text(json.dumps({"benchmark": title, "results": rows}, indent=2) + "\n")
    mpl.use("Agg")  # no display: write the file only
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        axis.scatter(row[f"payload vs float32 ({GOAL_SILOS} silos)"], row["accuracy"])
        axis.annotate(row["setting"], (row[f"payload vs float32 ({GOAL_SILOS} silos)"], row["accuracy"]), fontsize=7)
    axis.set_xscale("log")
    axis.set_xlabel(f"payload bytes up per silo per round vs float32 ({GOAL_SILOS} silos)")
    axis.set_ylabel("accuracy after 15 rounds")
    axis.set_title("compression: bytes vs accuracy (quickstart)")
    figure.tight_layout()
    figure.savefig(args.out / "compression.png", dpi=120)
    print(f"# {time.perf_counter() - started:.0f} s; wrote {args.out}/compression.json and compression.png")


if __name__ == "__main__":
    main()
