"""What crash-consistent rounds cost and how fast a killed hub is back.

1. Checkpoint size and write time per round (``Checkpoints.write``: safetensors + strict
   JSON, each fsynced and renamed) for a 1M- and a 100M-parameter model, with FedAvg (the
   model only) and FedAdam (the model and its two moments), on this host's disk, next to
   the baseline of a raw write of the same number of bytes (one file, fsynced and renamed,
   in the same run); and the time to read one back (every digest checked). 100M parameters
   with FedAdam hold 1.2 GB of tensors; the run is skipped (and says so) when the host has
   less than 4 GiB free.
2. Time from an aggregator kill to the next round accepted, locally, the median of
   ``--kills`` kills: a real local run of the quickstart (3 silos, masked, 3 rounds,
   training included) is killed with SIGKILL right after round 2's first update is
   admitted (``fedsilo_testing.crash``), then ``fedsilo run --resume`` starts; measured
   from the kill to the hub being back (its ``resume`` audit record) and to round 2's
   checkpoint committing (the round accepted). The baselines, measured as many times in the
   same run: a fresh ``fedsilo run`` of the same manifest, from its start to round 1's
   checkpoint committing (processes started, silos joined, one round trained), and its plain
   round time, from round 1's checkpoint to round 2's (one uninterrupted round).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_resume.py [--skip-kill | --skip-checkpoints] [--kills N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from _harness import print_figures

from fedsilo.aggregator import Checkpoints, RoundSummary
from fedsilo.identity import SigningKey, sha256_digest
from fedsilo.protocol import encode_weights
from fedsilo.registry import ModelSeal

ROOT = Path(__file__).parents[1]
GIB = 1 << 30


def _available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def _raw_write(path: Path, data: bytes) -> float:
    """Seconds to write ``data`` as one file with the checkpoint's durability: temp file, fsync, rename, fsync dir."""
    start = time.perf_counter()
    staged = path.with_suffix(".tmp")
    with staged.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staged, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return time.perf_counter() - start


def checkpoint_figures(parameters: int, strategy: str, folder: Path, repeats: int = 3) -> dict[str, Any]:
    """Write (and read back) the checkpoint of one round of a model with ``parameters`` float32 values."""
    rng = np.random.default_rng(0)
    weights = {"layer.weight": rng.standard_normal(parameters, dtype=np.float32)}
    state = (
        {f"{m}/layer.weight": rng.standard_normal(parameters, dtype=np.float32) for m in ("m", "v")}
        if strategy == "fedadam"
        else {}
    )
    key = SigningKey.generate()
    seal = ModelSeal(b"{}", key.sign(b"{}"))
    digest = sha256_digest(encode_weights(weights))
    summaries = [RoundSummary(1, ("a", "b", "c"), ("a", "b", "c"), (), {}, 1.0, digest)]
    writes, reads, raws = [], [], []
    size = 0
    for attempt in range(repeats):
        checkpoints = Checkpoints(folder / f"{parameters}-{strategy}-{attempt}", ledger_run="bench/run")
        start = time.perf_counter()
        path = checkpoints.write("bench", strategy, weights, state, seal, summaries)
        writes.append(time.perf_counter() - start)
        size = path.stat().st_size + path.with_suffix(".safetensors").stat().st_size
        start = time.perf_counter()
        checkpoints.load(1)
        reads.append(time.perf_counter() - start)
        shutil.rmtree(checkpoints.directory)
        raw = folder / f"raw-{parameters}-{strategy}-{attempt}.bin"
        raws.append(_raw_write(raw, os.urandom(1024) * (size // 1024) + os.urandom(size % 1024)))
        raw.unlink()
    return {
        "parameters": parameters,
        "strategy": strategy,
        "size_mib": size / (1 << 20),
        "write_s_median": float(np.median(writes)),
        "raw_write_s_median": float(np.median(raws)),
        "read_s_median": float(np.median(reads)),
        "write_mib_per_s": size / (1 << 20) / float(np.median(writes)),
    }


def _wait_for(path: Path, deadline: float, process: subprocess.Popen[Any] | None = None) -> float:
    """When ``path`` appeared; fails at once if ``process`` (the run that writes it) ended without it."""
    while not path.exists():
        if process is not None and process.poll() is not None and not path.exists():
            raise RuntimeError(f"the run ended (exit {process.returncode}) before {path} appeared; see its report.json")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.05)
    return time.monotonic()


def _quickstart(folder: Path) -> Path:
    documents = list(yaml.safe_load_all((ROOT / "examples" / "quickstart.yaml").read_text()))
    # Generous: a loaded machine takes minutes to start six Python processes (a resumed run's
    # silos took four minutes at a load average of 36, past a 300-second join window).
    documents[0]["spec"].update({"rounds": 3, "roundTimeoutSeconds": 900})
    documents[0]["spec"]["training"]["localEpochs"] = 1
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "job.yaml"
    manifest.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return manifest


def _places(folder: Path) -> list[str]:
    return [
        "--workdir",
        str(folder / "run"),
        "--registry",
        str(folder / "registry"),
        "--ledgers",
        str(folder / "ledgers"),
    ]


def fresh_run(folder: Path) -> tuple[float, float]:
    """Seconds from starting ``fedsilo run`` to round 1's checkpoint, and from there to round 2's (a plain round)."""
    manifest = _quickstart(folder)
    started = time.monotonic()
    run = subprocess.Popen(
        [sys.executable, "-m", "fedsilo", "run", str(manifest), *_places(folder), "--no-baseline"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = _wait_for(folder / "run" / "checkpoints" / "round-00001.json", started + 1800, run)
    second = _wait_for(folder / "run" / "checkpoints" / "round-00002.json", started + 1800, run)
    assert run.wait(timeout=1800) == 0, "the fresh run failed"
    return first - started, second - first


def kill_to_next_round(folder: Path) -> dict[str, Any]:
    """Kill a local run at round 2's first admitted update; how long until the hub is back and round 2 is accepted."""
    manifest = _quickstart(folder)
    run = folder / "run"
    where = [str(manifest), *_places(folder), "--round", "2", "--phase", "upload"]
    crash = subprocess.Popen(
        [sys.executable, "-m", "fedsilo_testing.crash", *where],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert crash.wait(timeout=900) == -signal.SIGKILL, "the crash driver did not die by SIGKILL"
    killed = time.monotonic()
    resumed = subprocess.Popen(
        [sys.executable, "-m", "fedsilo", "run", "--resume", str(run), "--no-baseline", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = killed + 1800
    while b'"operation":"resume"' not in (run / "audit.jsonl").read_bytes():
        if time.monotonic() > deadline:
            raise TimeoutError("the resumed hub never recorded its resume")
        time.sleep(0.05)
    back = time.monotonic()
    accepted = _wait_for(run / "checkpoints" / "round-00002.json", deadline, resumed)
    out, _ = resumed.communicate(timeout=1800)
    report = json.loads(out)
    assert report["status"] == "succeeded", report
    return {"kill_to_hub_back_s": back - killed, "kill_to_round_accepted_s": accepted - killed}


def recovery_figures(folder: Path, kills: int) -> dict[str, Any]:
    """Medians of ``kills`` kill-to-next-round measurements and as many fresh starts, alternated."""
    killed, fresh = [], []
    for attempt in range(kills):
        killed.append(kill_to_next_round(folder / f"kill-{attempt}"))
        fresh.append(fresh_run(folder / f"fresh-{attempt}"))
    return {
        "kills": kills,
        "kill_to_hub_back_s_median": float(np.median([k["kill_to_hub_back_s"] for k in killed])),
        "kill_to_round_accepted_s_median": float(np.median([k["kill_to_round_accepted_s"] for k in killed])),
        "kill_to_round_accepted_s_max": float(max(k["kill_to_round_accepted_s"] for k in killed)),
        "fresh_start_to_round_1_s_median": float(np.median([start for start, _ in fresh])),
        "plain_round_s_median": float(np.median([plain for _, plain in fresh])),
    }


def main() -> None:
    """Measure, print a table and JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-kill", action="store_true", help="only the checkpoint figures")
    parser.add_argument("--skip-checkpoints", action="store_true", help="only the kill-to-next-round figures")
    parser.add_argument("--kills", type=int, default=5, help="kills (and fresh starts) to take the median of")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        folder = Path(tmp)
        for parameters in () if args.skip_checkpoints else (1_000_000, 100_000_000):
            for strategy in ("fedavg", "fedadam"):
                # The tensors, their safetensors bytes and a read-back copy live at once.
                needed = parameters * 4 * (3 if strategy == "fedadam" else 1) * 3
                if _available_bytes() < needed + 1 * GIB:
                    print(f"skipped {parameters} parameters with {strategy}: not enough free memory")
                    continue
                rows.append(checkpoint_figures(parameters, strategy, folder, repeats=3 if parameters < 10**7 else 1))
        if rows:
            print_figures("checkpoint per round", rows)
        if not args.skip_kill:
            print_figures("aggregator kill to next round accepted (local)", [recovery_figures(folder, args.kills)])


if __name__ == "__main__":
    main()
