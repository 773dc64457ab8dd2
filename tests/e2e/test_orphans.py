"""Killing ``fedsilo run`` with SIGKILL (no chance to clean up) leaves no silo process behind:
every sidecar and trainer notices its parent is gone and exits within a bounded time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .conftest import ROOT, quick_manifest

# Generous on a shared machine: a trainer killed while still importing its libraries exits as
# soon as it starts; one already serving gets SIGTERM the moment the run dies.
EXIT_BOUND_SECONDS = 300.0
START_TIMEOUT_SECONDS = 300.0


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_killing_the_run_ends_every_sidecar_and_trainer(tmp_path: Path) -> None:
    path = quick_manifest(tmp_path, rounds=50, roundTimeoutSeconds=120)
    workdir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    command = [sys.executable, "-m", "fedsilo", "run", str(path), "--workdir", str(workdir), "--no-baseline"]
    output = tmp_path / "run.out"
    run = subprocess.Popen(
        [*command, "--registry", str(tmp_path / "registry")],
        env=env,
        stdout=output.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        # Every silo's sidecar and trainer started (a trainer still starting up must exit too).
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        silo_processes: set[int] = set()
        while len(silo_processes) < 6:
            assert run.poll() is None, f"the run ended before its silos started: {output.read_text()}"
            assert time.monotonic() < deadline, "the silo processes never started"
            time.sleep(1)
            silo_processes = _children(run.pid)
        time.sleep(10)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    deadline = time.monotonic() + EXIT_BOUND_SECONDS
    while any(_running(pid) for pid in silo_processes) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [pid for pid in silo_processes if _running(pid)], "silo processes outlived the killed run"
