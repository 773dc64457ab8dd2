"""Resume, rollback and unlearning refuse what they cannot do, naming the file, round or silo and the fix; nothing changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from fedsilo.aggregator import Checkpoints, RoundSummary
from fedsilo.identity import SigningKey, sha256_digest
from fedsilo.protocol import encode_weights
from fedsilo.registry import ModelSeal
from fedsilo.runner import RecoveryError, RunState, read_run_state, rollback, unlearn
from fedsilo.runner._recovery import write_run_state
from tests.conftest import ROOT

WEIGHTS = {"w": np.ones(3, dtype=np.float32)}


def _run_dir(tmp_path: Path, example: str = "quickstart.yaml", rounds: int = 2) -> Path:
    """A run directory as ``fedsilo run`` leaves it, with checkpoints of rounds 0..``rounds``."""
    run = tmp_path / "run"
    run.mkdir()
    write_run_state(
        run,
        RunState(
            format="fedsilo.run/v1",
            job="quickstart",
            run_id="r1",
            manifest=str(ROOT / "examples" / example),
            registry=str(tmp_path / "registry"),
            ledgers=str(tmp_path / "ledgers"),
            isolate=False,
        ),
    )
    checkpoints = Checkpoints(run, ledger_run="quickstart/r1")
    seal = ModelSeal(b"{}", SigningKey.generate().sign(b"{}"))
    summaries = [
        RoundSummary(n, ("hospital-a", "hospital-b"), ("hospital-a",), (), {}, 1.0, _digest()) for n in range(1, 3)
    ]
    for n in range(rounds + 1):
        checkpoints.write("quickstart", "fedavg", WEIGHTS, {}, seal, summaries[:n])
    return run


def _digest() -> str:
    return sha256_digest(encode_weights(WEIGHTS))


def test_a_missing_run_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(RecoveryError, match=r"nowhere is not a folder: give the run directory"):
        read_run_state(tmp_path / "nowhere")


def test_a_folder_without_run_json_is_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(RecoveryError, match=r"run\.json is missing: .* start the job again"):
        read_run_state(tmp_path)


def test_a_damaged_run_json_is_named(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    (run / "run.json").write_text('{"format": "fedsilo.run/v1", "job": "quickstart", "job": "other"}')
    with pytest.raises(RecoveryError, match=r"run\.json is damaged .*duplicate key"):
        read_run_state(run)


def test_a_round_without_a_checkpoint_cannot_be_rolled_back_to(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    with pytest.raises(RecoveryError, match=r"round 9 has no checkpoint .*choose one of 0, 1, 2"):
        rollback(run, 9, "bad round")
    with pytest.raises(RecoveryError, match=r"round 2 is the run's newest checkpoint"):
        rollback(run, 2, "nothing to do")


def test_a_run_that_never_started_a_round_has_nothing_to_roll_back(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    for path in (run / "checkpoints").iterdir():
        path.unlink()
    with pytest.raises(RecoveryError, match=r"holds no checkpoint: the run never started a round"):
        rollback(run, 0, "empty")


def test_a_dp_job_is_not_rolled_back_because_its_rounds_were_released(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, "private.yaml")
    with pytest.raises(RecoveryError, match=r"differential privacy: .* released and charged"):
        rollback(run, 0, "dp")


def test_unlearning_names_an_unknown_silo_and_refuses_to_go_below_min_silos(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    with pytest.raises(RecoveryError, match=r"silo 'hospital-z' is not in job quickstart .*hospital-a"):
        unlearn(run, "hospital-z", "typo")
    state = read_run_state(run)
    write_run_state(run, state.model_copy(update={"excluded": ("hospital-c",)}))
    with pytest.raises(RecoveryError, match=r"only 1 silos remain, below the job's minSilos 2"):
        unlearn(run, "hospital-b", "too many")
    with pytest.raises(RecoveryError, match=r"hospital-c was already forgotten"):
        unlearn(run, "hospital-c", "twice")


def test_an_empty_reason_is_refused(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    with pytest.raises(RecoveryError, match=r"--reason is empty"):
        rollback(run, 0, "  ")


def _fedsilo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command's result, its stderr with the console's line wrapping undone (paths are long)."""
    done = subprocess.run(
        [sys.executable, "-m", "fedsilo", *args], capture_output=True, text=True, cwd=cwd, check=False
    )
    done.stderr = " ".join(done.stderr.split())
    return done


# Five commands, each a new Python process: minutes on a loaded machine.
@pytest.mark.timeout(1800)
def test_the_commands_exit_2_naming_the_problem(tmp_path: Path) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(yaml.safe_dump({"kind": "nothing"}))
    both = _fedsilo("run", str(manifest), "--resume", str(tmp_path), cwd=tmp_path)
    assert both.returncode == 2 and "give no MANIFEST or --workdir with it" in both.stderr
    neither = _fedsilo("run", cwd=tmp_path)
    assert neither.returncode == 2 and "give a MANIFEST to run, or --resume RUN_DIR" in neither.stderr
    missing = _fedsilo("run", "--resume", str(tmp_path / "gone"), cwd=tmp_path)
    assert missing.returncode == 2 and "gone is not a folder" in missing.stderr
    rolled = _fedsilo("models", "rollback", str(tmp_path / "gone"), "--to-round", "1", "--reason", "x", cwd=tmp_path)
    assert rolled.returncode == 2 and "gone is not a folder" in rolled.stderr
    forgot = _fedsilo("unlearn", str(tmp_path / "gone"), "--silo", "a", "--reason", "x", cwd=tmp_path)
    assert forgot.returncode == 2 and "gone is not a folder" in forgot.stderr
