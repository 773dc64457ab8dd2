"""A hub killed (SIGKILL) at every phase of a round resumes at its last checkpoint and ends where an uninterrupted run ends.

One job holds every state a resumed hub must get back: the private example (masked sums,
record-level DP-SGD charged by both ledgers) with FedAdam (whose moments live in the
checkpoint). It is killed once per phase in ONE run (``fedsilo_testing.crash``, whose ``HubKills``
arms the N-th hub process of the run with the N-th kill): the hub process dies at key
agreement of round 1, and its restarts at the upload, the unmasking and the registry write of
round 2, each restarted by the runner from the newest checkpoint on the same port while
every silo's sidecar and trainer stay up and reconnect, as they do when a cluster's
aggregator pod is deleted. The last kill, at the checkpoint write of round 2, takes the
whole runner down (silos included), and ``fedsilo run --resume`` finishes the job: the
other recovery path. The job costs one uninterrupted run, one killed run and one resume
(a masked FedAdam job and a DP job used to cost that each), and both tests read that one
chain. It is compared with one uninterrupted run of the same manifest:

- the final model is bit for bit the same (same digest): training is seeded per round and
  silo, masked sums are exact in Z_2^32, and FedAdam's moments come back from the
  checkpoint; the job draws its DP-SGD noise from ``fedsilo_testing.replayable`` so two
  runs can be compared at all, and the round in flight is sent again from each silo's kept
  release rather than trained afresh;
- ``fedsilo audit verify`` and ``fedsilo models verify`` pass, and the audit log records
  every resume, each after the round its checkpoint held, and says which the runner did
  (its hub restarted, the silos up) and which ``fedsilo run --resume`` did;
- each silo's ledger and the hub's charge every round exactly once, agree on every charge,
  and verify with their writers' keys.
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
from fedsilo.privacy.ledger import PrivacyLedger, compare_ledgers
from fedsilo.registry import LocalRegistry
from fedsilo.runner import LocalRun
from fedsilo_testing.crash import Kill, Phase, crash_command
from fedsilo_testing.local_runs import run_options
from fedsilo_testing.replayable import FACTORY

from .conftest import ROOT

ROUNDS = 3
# Each kill in run order: every phase the hub holds state a checkpoint must not lose or
# double-count. Key agreement dies in round 1 (resumed from the initial model's checkpoint),
# the rest in round 2 (resumed from round 1's, FedAdam's moments and a DP round's charges
# included). The hub alone dies at the first four (the runner restarts it, the silos stay);
# the last takes the whole runner, and ``fedsilo run --resume`` goes on.
KILLS = [
    Kill(1, Phase.KEYS),
    Kill(2, Phase.UPLOAD),
    Kill(2, Phase.UNMASK),
    Kill(2, Phase.REGISTRY),
    Kill(2, Phase.CHECKPOINT, runner=True),
]
TIMEOUT = 600
# One uninterrupted run and one chain of restarts: about a minute each on an idle 2-core
# machine, far more on a loaded one.
pytestmark = pytest.mark.timeout(3600)


def _manifest(folder: Path, example: str, **spec_changes: object) -> Path:
    documents = list(yaml.safe_load_all((ROOT / "examples" / example).read_text()))
    spec = documents[0]["spec"]
    # Generous, and free: a deadline only matters when a silo is late (a loaded machine takes
    # minutes to start six processes: at a load average of 23 the silos took over 300 s to
    # join); a killed hub's silos stay up and rejoin, so no round waits for a silo that is gone.
    spec.update({"rounds": ROUNDS, "roundTimeoutSeconds": 900, **spec_changes})
    spec["training"]["localEpochs"] = 1
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


@dataclass(frozen=True)
class Job:
    """A job's manifest, the final model of its uninterrupted run, and the folder and report of its killed chain."""

    manifest: Path
    name: str
    final_digest: str
    killed: Path
    report: dict[str, object]


def _uninterrupted(folder: Path, manifest: Path) -> tuple[str, str]:
    report = LocalRun(load_manifest(manifest), run_options(manifest, folder)).execute()
    assert report.status == "succeeded", report.failure
    final = LocalRegistry(folder / "registry").show(report.job)
    assert final.lineage.round == ROUNDS
    return report.job, final.lineage.model_digest


def _fedsilo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedsilo", *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def _crash(manifest: Path, folder: Path, kills: list[Kill], *extra: str) -> subprocess.CompletedProcess[str]:
    """The crash driver run on ``manifest`` in ``folder``, its hub dying at ``kills``; its exit and output."""
    return subprocess.run(
        crash_command(manifest, folder, kills, *extra), capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def _killed_at_every_phase(manifest: Path, folder: Path) -> dict[str, object]:
    """Run ``manifest`` with its hub killed at each of ``KILLS`` (the last kill the runner's), resume it; the report."""
    run = folder / "run"
    crashed = _crash(manifest, folder, KILLS)
    assert crashed.returncode == -signal.SIGKILL, (
        f"the run was not killed: {crashed.stdout[-2000:]}{crashed.stderr[-3000:]}"
    )
    resumed = _fedsilo("run", "--resume", str(run), "--no-baseline", "--json")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report: dict[str, object] = json.loads(resumed.stdout)
    return report


def _job(folder: Path, manifest: Path) -> Job:
    name, digest = _uninterrupted(folder / "uninterrupted", manifest)
    killed = folder / "killed"
    return Job(manifest, name, digest, killed, _killed_at_every_phase(manifest, killed))


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    """The private example (masked, record-level DP-SGD, replayable noise) with FedAdam, killed at every phase."""
    folder = tmp_path_factory.mktemp("private-fedadam")
    manifest = _manifest(
        folder / "manifest",
        "private.yaml",
        model={"factory": FACTORY, "hiddenSizes": [64]},
        strategy={"name": "fedadam"},
    )
    return _job(folder, manifest)


def _check_common(job: Job) -> None:
    run, registry = job.killed / "run", job.killed / "registry"
    rounds = job.report["rounds"]
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
    # Every phase dies before its round's checkpoint commits: each resume goes on after the round before.
    assert [(record["operation"], record["round"]) for record in operations] == [
        ("resume", kill.round - 1) for kill in KILLS
    ]
    # A kill of the hub alone was the runner's to restart (the silos stayed up); the runner's own, --resume's.
    restarted = ["the runner restarted it" in record["reason"] for record in operations]
    assert restarted == [True, True, True, True, False], [record["reason"] for record in operations]
    assert operations[-1]["reason"] == f"fedsilo run --resume {run}"


def test_a_masked_fedadam_job_killed_at_every_phase_ends_with_the_uninterrupted_model(job: Job) -> None:
    _check_common(job)


def test_a_dp_job_killed_at_every_phase_charges_no_round_twice(job: Job) -> None:
    ledgers, run = job.killed / "ledgers", job.killed / "run"
    silos = load_manifest(job.manifest).job.spec.silos
    with PrivacyLedger(ledgers / "hub.sqlite", read_only=True) as hub_ledger:
        hub_ledger.verify(key=load_signing_key(ledgers / "aggregator-key.pem").public_key)
        hub_rounds = sorted(c.round for c in hub_ledger.history())
        for silo in silos:
            key = read_identity(run / "silos" / silo / "identity").signing_key.public_key
            with PrivacyLedger(ledgers / "silos" / f"{silo}.sqlite", read_only=True) as own_ledger:
                own_ledger.verify(key=key)
                own = [c.round for c in own_ledger.history(silo=silo)]
                agreement = compare_ledgers(hub_ledger, own_ledger, silo)
            assert own == list(range(1, ROUNDS + 1)), f"{silo} charged {own}"
            # Every round charged once on each side, with the same facts: nothing only one side holds.
            assert agreement.agree and not agreement.only_silo, agreement
    assert hub_rounds == sorted(list(range(1, ROUNDS + 1)) * len(silos))


def test_a_hub_that_keeps_dying_fails_the_job_once_its_restarts_are_spent(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "manifest", "quickstart.yaml", rounds=1)
    run = tmp_path / "run"
    crashed = _crash(manifest, tmp_path, [Kill(1, Phase.KEYS)] * 2, "--max-hub-restarts=1", "--metrics-port=0")
    assert crashed.returncode == 0, crashed.stderr[-3000:]
    report = json.loads(crashed.stdout)
    assert report["status"] == "failed"
    assert "after 1 restarts (at most 1, --max-hub-restarts)" in report["failure"], report["failure"]
    assert f"fedsilo run --resume {run}" in report["failure"]
    assert [r["restart"] for r in report["hub_restarts"]] == [1]
    assert "killed by SIGKILL" in report["hub_restarts"][0]["cause"]
    # The restarted hub served /metrics where the first one did (the port run.json keeps).
    metrics_port = json.loads((run / "run.json").read_text())["metrics_port"]
    assert metrics_port is not None and report["hub_restarts"][0]["metrics_port"] == metrics_port
    # The hub processes' own log lines reached the runner's log (the crash driver logs at INFO).
    assert crashed.stderr.count("INFO fedsilo.aggregator: round 1 opened with") == 2, crashed.stderr[-3000:]
    operations = [
        record
        for record in map(json.loads, (run / "audit.jsonl").read_text().splitlines())
        if record["kind"] == "operation"
    ]
    assert [(r["operation"], r["round"]) for r in operations] == [("resume", 0)]
