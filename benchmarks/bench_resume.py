"""What crash-consistent rounds cost and how fast a killed hub is back.

1. Checkpoint size and write time per round (``Checkpoints.write``: safetensors + strict
   JSON, each fsynced and renamed) for a 1M- and a 100M-parameter model, with FedAvg (the
   model only) and FedAdam (the model and its two moments), on this host's disk, next to
   the baseline of a raw write of the same number of bytes (one file, fsynced and renamed,
   in the same run); and the time to read one back (every digest checked). 100M parameters
   with FedAdam hold 1.2 GB of tensors; the run is skipped (and says so) when the host has
   less than 4 GiB free.
2. Time from an aggregator kill to the next round accepted, locally, the median of
   ``--kills`` kills in ONE real local run of the quickstart (3 silos, masked, training
   included): its hub process is killed with SIGKILL right after the first update of each
   of rounds 2..kills+1 is admitted (``fedsilo_testing.crash.HubKills``); the runner
   restarts it from round r-1's checkpoint on the same port while the silos stay up. Measured
   in the runner, from the killed update's admission (the hub forwards it just before it dies)
   to the hub listening again and to round r closing (its summary: the round accepted). The
   baseline, from the same run: the plain round time of its last two rounds, which no kill
   touches. With ``--runner-kills N``, also the old path: the whole runner killed at round
   2's first admitted update and ``fedsilo run --resume`` started (every silo process again),
   from the kill to round 2's checkpoint committing.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_resume.py [--skip-kill | --skip-checkpoints] [--kills N] [--runner-kills N]
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
from fedsilo.api import load_manifest
from fedsilo.identity import SigningKey, sha256_digest
from fedsilo.protocol import PolicyVerdict, encode_weights
from fedsilo.registry import ModelSeal
from fedsilo.runner import HubRestart, LocalRun
from fedsilo_testing.crash import HubKills, Kill, Phase, crash_command
from fedsilo_testing.local_runs import run_options

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


def _quickstart(folder: Path, rounds: int) -> Path:
    documents = list(yaml.safe_load_all((ROOT / "examples" / "quickstart.yaml").read_text()))
    # Generous: a loaded machine takes minutes to start six Python processes (a resumed run's
    # silos took four minutes at a load average of 36, past a 300-second join window).
    documents[0]["spec"].update({"rounds": rounds, "roundTimeoutSeconds": 900})
    documents[0]["spec"]["training"]["localEpochs"] = 1
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "job.yaml"
    manifest.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return manifest


class _Clock:
    """The runner-side observer: when each kill's update was admitted, the hub was back, each round closed."""

    def __init__(self, killed_rounds: set[int]) -> None:
        self.killed_rounds = killed_rounds
        self.killed: dict[int, float] = {}
        self.back: list[float] = []
        self.closed: dict[int, float] = {}
        self._current = 0

    def round_started(self, round_number: int, participants: tuple[str, ...]) -> None:
        self._current = round_number

    def update_decided(self, round_number: int, silo: str, verdict: PolicyVerdict) -> None:
        if verdict.accepted and round_number in self.killed_rounds:
            self.killed.setdefault(round_number, time.monotonic())

    def round_finished(self, summary: RoundSummary) -> None:
        self.closed.setdefault(summary.round, time.monotonic())

    def hub_restarted(self, restart: HubRestart) -> None:
        self.back.append(time.monotonic())


def supervised_kills(folder: Path, kills: int) -> dict[str, Any]:
    """One run whose hub dies at the first admitted update of rounds 2..kills+1; medians and the plain round."""
    killed_rounds = list(range(2, kills + 2))
    manifest = _quickstart(folder, rounds=kills + 3)
    clock = _Clock(set(killed_rounds))
    options = run_options(manifest, folder, max_hub_restarts=kills)
    setup = HubKills(tuple(Kill(r, Phase.UPLOAD) for r in killed_rounds))
    report = LocalRun(load_manifest(manifest), options, clock, hub_setup=setup).execute()
    assert report.status == "succeeded", report.failure
    assert len(report.hub_restarts) == kills, report.hub_restarts
    to_back = [back - clock.killed[r] for r, back in zip(killed_rounds, clock.back, strict=True)]
    to_round = [clock.closed[r] - clock.killed[r] for r in killed_rounds]
    last = kills + 3
    plain = [clock.closed[r] - clock.closed[r - 1] for r in (last - 1, last)]
    return {
        "kills": kills,
        "kill_to_hub_back_s_median": float(np.median(to_back)),
        "kill_to_round_accepted_s_median": float(np.median(to_round)),
        "kill_to_round_accepted_s_max": float(max(to_round)),
        "plain_round_s_median": float(np.median(plain)),
    }


def runner_kill(folder: Path) -> float:
    """The whole runner killed at round 2's first admitted update, then ``fedsilo run --resume``: seconds to round 2."""
    manifest = _quickstart(folder, rounds=3)
    run = folder / "run"
    crash = subprocess.Popen(
        crash_command(manifest, folder, [Kill(2, Phase.UPLOAD, runner=True)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert crash.wait(timeout=1800) == -signal.SIGKILL, "the crash driver did not die by SIGKILL"
    killed = time.monotonic()
    resumed = subprocess.Popen(
        [sys.executable, "-m", "fedsilo", "run", "--resume", str(run), "--no-baseline", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    accepted = _wait_for(run / "checkpoints" / "round-00002.json", killed + 1800, resumed)
    out, _ = resumed.communicate(timeout=1800)
    assert json.loads(out)["status"] == "succeeded", out
    return accepted - killed


def main() -> None:
    """Measure, print a table and JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-kill", action="store_true", help="only the checkpoint figures")
    parser.add_argument("--skip-checkpoints", action="store_true", help="only the kill-to-next-round figures")
    parser.add_argument("--kills", type=int, default=5, help="hub kills (in one run) to take the median of")
    parser.add_argument("--runner-kills", type=int, default=0, help="also kill the whole runner this often")
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
            figures = supervised_kills(folder / "supervised", args.kills)
            if args.runner_kills:
                whole = [runner_kill(folder / f"runner-{n}") for n in range(args.runner_kills)]
                figures["runner_kill_to_round_accepted_s_median"] = float(np.median(whole))
            print_figures("aggregator kill to next round accepted (local)", [figures])


if __name__ == "__main__":
    main()
