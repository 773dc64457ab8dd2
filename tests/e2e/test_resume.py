"""A hub killed (SIGKILL) at any phase of a round resumes at its last checkpoint and ends where an uninterrupted run ends.

Each test kills a whole local run (``fedsilo_testing.crash``: the in-process aggregator and,
by their parent-death signal, the silos' processes) at one phase of round 2, resumes it with
``fedsilo run --resume``, and compares it with one uninterrupted run of the same manifest:

- the final model is bit for bit the same (same digest): training is seeded per round and
  silo, masked sums are exact in Z_2^32, and FedAdam's moments come back from the
  checkpoint; the DP job draws its DP-SGD noise from ``fedsilo_testing.replayable`` so two
  runs can be compared at all, and the round in flight is sent again from each silo's kept
  release rather than trained afresh;
- ``fedsilo audit verify`` and ``fedsilo models verify`` pass, and the audit log records the
  resume;
- in the DP job each silo's ledger and the hub's charge every round exactly once, agree on
  every charge, and verify with their writers' keys.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from fedsilo.api import load_manifest
from fedsilo.identity import load_signing_key, read_identity
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.registry import LocalRegistry
from fedsilo.runner import LocalRun, RunOptions
from fedsilo_testing.crash import Phase
from fedsilo_testing.replayable import FACTORY

from .conftest import ROOT

ROUNDS = 3
KILLED_ROUND = 2
TIMEOUT = 900
# Whole runs, one after another, on a machine that may be loaded: minutes each.
pytestmark = pytest.mark.timeout(3600)


def _manifest(folder: Path, example: str, **spec_changes: object) -> Path:
    documents = list(yaml.safe_load_all((ROOT / "examples" / example).read_text()))
    spec = documents[0]["spec"]
    # Generous: on a loaded machine six Python processes take minutes to import torch and join.
    spec.update({"rounds": ROUNDS, "roundTimeoutSeconds": 300, **spec_changes})
    spec["training"]["localEpochs"] = 1
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


@dataclass(frozen=True)
class Job:
    """A job's manifest and the final model of its uninterrupted run."""

    manifest: Path
    name: str
    final_digest: str


def _uninterrupted(folder: Path, manifest: Path) -> Job:
    options = RunOptions(
        manifest_path=manifest,
        workdir=folder / "run",
        registry=folder / "registry",
        ledgers=folder / "ledgers",
        baseline=False,
    )
    report = LocalRun(load_manifest(manifest), options).execute()
    assert report.status == "succeeded", report.failure
    final = LocalRegistry(folder / "registry").show(report.job)
    assert final.lineage.round == ROUNDS
    return Job(manifest, report.job, final.lineage.model_digest)


@pytest.fixture(scope="module")
def masked_job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    """The quickstart (masked) with FedAdam, whose moments a resumed hub must get back."""
    folder = tmp_path_factory.mktemp("masked")
    return _uninterrupted(folder, _manifest(folder / "manifest", "quickstart.yaml", strategy={"name": "fedadam"}))


@pytest.fixture(scope="module")
def private_job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    """The private example (masked, record-level DP-SGD), with replayable noise."""
    folder = tmp_path_factory.mktemp("private")
    manifest = _manifest(folder / "manifest", "private.yaml", model={"factory": FACTORY, "hiddenSizes": [64]})
    return _uninterrupted(folder, manifest)


def _fedsilo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedsilo", *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def _crash_and_resume(job: Job, folder: Path, phase: Phase) -> dict[str, object]:
    """Kill a run at ``phase`` of round 2, resume it; the resumed run's report."""
    run = folder / "run"
    crashed = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedsilo_testing.crash",
            str(job.manifest),
            "--workdir",
            str(run),
            "--registry",
            str(folder / "registry"),
            "--ledgers",
            str(folder / "ledgers"),
            "--round",
            str(KILLED_ROUND),
            "--phase",
            phase.value,
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    resumed = _fedsilo("run", "--resume", str(run), "--no-baseline", "--json")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report: dict[str, object] = json.loads(resumed.stdout)
    return report


def _check_common(job: Job, folder: Path, report: dict[str, object]) -> None:
    run, registry = folder / "run", folder / "registry"
    rounds = report["rounds"]
    assert isinstance(rounds, list)
    assert [row["round"] for row in rounds] == list(range(1, ROUNDS + 1))
    final = LocalRegistry(registry).show(job.name)
    assert final.lineage.round == ROUNDS
    assert final.lineage.model_digest == job.final_digest
    key = str(run / "aggregator-key.pub")
    audit = _fedsilo("audit", "verify", str(run / "audit.jsonl"), "--key", key)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    models = _fedsilo("models", "verify", "--registry", str(registry), "--key", key)
    assert models.returncode == 0, models.stdout + models.stderr
    operations = [
        record
        for record in map(json.loads, (run / "audit.jsonl").read_text().splitlines())
        if record["kind"] == "operation"
    ]
    # Every phase dies before round 2's checkpoint commits: the run goes on after round 1.
    assert [(record["operation"], record["round"]) for record in operations] == [("resume", KILLED_ROUND - 1)]


# Each kill is two whole runs (crash, resume), the suite's longest part: CI kills the masked job
# while it unmasks (secure-aggregation state in flight) and the DP job after its registry write
# (model stored, checkpoint not yet: the round must not count or charge twice). The other phases
# (Phase) run the same way with `pytest tests/e2e/test_resume.py` after adding them here.
MASKED_PHASES = [Phase.UNMASK]
DP_PHASES = [Phase.REGISTRY]


@pytest.mark.parametrize("phase", MASKED_PHASES, ids=[p.value for p in MASKED_PHASES])
def test_a_masked_job_killed_mid_round_ends_with_the_uninterrupted_model(
    masked_job: Job, tmp_path: Path, phase: Phase
) -> None:
    report = _crash_and_resume(masked_job, tmp_path, phase)
    _check_common(masked_job, tmp_path, report)


@pytest.mark.parametrize("phase", DP_PHASES, ids=[p.value for p in DP_PHASES])
def test_a_dp_job_killed_mid_round_charges_no_round_twice_and_ends_with_the_uninterrupted_model(
    private_job: Job, tmp_path: Path, phase: Phase
) -> None:
    report = _crash_and_resume(private_job, tmp_path, phase)
    _check_common(private_job, tmp_path, report)
    ledgers, run = tmp_path / "ledgers", tmp_path / "run"
    with PrivacyLedger(ledgers / "hub.sqlite", read_only=True) as hub_ledger:
        hub_ledger.verify(key=load_signing_key(ledgers / "aggregator-key.pem").public_key)
        hub = {(c.silo, c.round): c for c in hub_ledger.history()}
    for silo in load_manifest(private_job.manifest).job.spec.silos:
        key = read_identity(run / "silos" / silo / "identity").signing_key.public_key
        with PrivacyLedger(ledgers / "silos" / f"{silo}.sqlite", read_only=True) as own_ledger:
            own_ledger.verify(key=key)
            own = own_ledger.history(silo=silo)
        assert [c.round for c in own] == list(range(1, ROUNDS + 1)), f"{silo} charged {[c.round for c in own]}"
        for charge in own:
            theirs = hub[(silo, charge.round)]
            assert (theirs.job, theirs.mechanism, theirs.epsilon_job) == (
                charge.job,
                charge.mechanism,
                charge.epsilon_job,
            )
    assert sorted(round_number for _, round_number in hub) == sorted(list(range(1, ROUNDS + 1)) * 3)
