"""A silo process that dies by itself (not a dropout a test asks for) ends ``fedsilo run`` at once.

The run's round timeout is far longer than the test's own: a run that waited for the dead
sidecar's step to time out would fail the test by its timeout, not finish.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from fedsilo.runner import LocalRun
from fedsilo_testing.local_runs import KillOnRound, run_with_fault

from .conftest import quick_manifest


def _sigkill_sidecar(run: LocalRun, silo: str) -> None:
    # A real signal from outside, as the OOM killer sends it: the run is not told beforehand.
    os.kill(run.processes_of(silo).sidecar.pid, signal.SIGKILL)


@pytest.mark.timeout(1200)  # a third of the round timeout: only failing fast finishes in time
def test_a_sidecar_killed_mid_run_fails_the_run_naming_it(tmp_path: Path) -> None:
    path = quick_manifest(
        tmp_path,
        silos=["hospital-a", "hospital-b"],
        minSilos=2,
        rounds=2,
        roundTimeoutSeconds=3600,
        model={"builtin": "mlp", "hiddenSizes": [8]},
        aggregation={"mode": "plain"},
        policy={"normCap": 20.0, "dataClass": "internal"},
    )
    run = run_with_fault(path, tmp_path, KillOnRound("hospital-b", 1, _sigkill_sidecar))
    report = run.execute()
    assert report.status == "failed"
    pid = run.processes_of("hospital-b").sidecar.pid
    assert report.failure.startswith(f"the sidecar of silo hospital-b (pid {pid}) died: killed by SIGKILL"), (
        report.failure
    )
    # The tail of its log says what it was doing; the link's token is not in it.
    log = tmp_path / "run" / "silos" / "hospital-b" / "sidecar.log"
    assert f"the last lines of {log}:\n" in report.failure
    last_line = log.read_text().splitlines()[-1]
    assert report.failure.endswith(last_line)
    assert run.processes_of("hospital-b").link_token not in report.failure
    assert report.rounds == []
