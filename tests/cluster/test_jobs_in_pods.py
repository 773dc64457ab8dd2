"""The whole path with nothing faked: the charts installed, the quickstart's job and Silos
applied, the images' own entry points in real pods, the job Succeeded with its rounds,
participants and accuracy in its status, an Event per round and the model in the registry;
and pods killed mid-job: a silo's trainer pod is rebuilt while the job still ends (never
hangs), and the aggregator's pod, deleted, comes back and resumes from its last checkpoint to
the round count the job asked for, its audit chain verifying."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fedsilo.operator._hub_objects import AGGREGATOR
from fedsilo.operator._names import COMPONENT_LABEL, JOB_LABEL, SILO_LABEL
from fedsilo.operator._silo_objects import TRAINER
from fedsilo_testing.cluster import (
    JOB_NAMESPACE,
    SILOS,
    TEST_TIMEOUT_S,
    Cluster,
    aggregator_state_dir,
    apply_quickstart,
    delete_job,
    job_manifest,
    job_status,
    wait_finished,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(TEST_TIMEOUT_S)]

QUICKSTART = "quickstart"


def _pods(cluster: Cluster, job: str) -> list[dict[str, Any]]:
    return [
        pod
        for namespace in (JOB_NAMESPACE, *SILOS)
        for pod in cluster.get("pods", "-n", namespace, "-l", f"{JOB_LABEL}={job}")["items"]
    ]


def _events(cluster: Cluster, job: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.kind=FederatedJob,involvedObject.name={job}"
    items: list[dict[str, Any]] = cluster.get("events", "-n", JOB_NAMESPACE, "--field-selector", selector)["items"]
    return items


def _model_file(cluster: Cluster, job: str, uri: str) -> Path:
    """Where the registry's model file is on the node: the aggregator's state claim's volume."""
    node_dir, mount_path = aggregator_state_dir(cluster, job)
    return node_dir / Path(uri.removeprefix("file://")).relative_to(mount_path)


@pytest.fixture(scope="module")
def quickstart_run(fedsilo: Cluster) -> dict[str, Any]:
    """The quickstart job (3 rounds) run to its end once; its final status."""
    delete_job(fedsilo, QUICKSTART)
    apply_quickstart(fedsilo, job_manifest(QUICKSTART, rounds=3))
    return wait_finished(fedsilo, QUICKSTART)


def test_quickstart_succeeds_in_real_pods(fedsilo: Cluster, quickstart_run: dict[str, Any]) -> None:
    status = quickstart_run
    assert status["phase"] == "Succeeded", status
    assert status["round"] == 3
    assert set(SILOS) >= set(status["participants"])
    assert len(status["participants"]) >= 2

    rounds = {event["message"] for event in _events(fedsilo, QUICKSTART) if event["reason"] == "RoundCompleted"}
    assert len(rounds) == 3, rounds

    model = status["latestModel"]
    assert model["round"] == 3
    stored = _model_file(fedsilo, QUICKSTART, model["uri"])
    assert "sha256:" + hashlib.sha256(stored.read_bytes()).hexdigest() == model["digest"]

    # The images' own entry points ran: the operator sets arguments, never a command.
    for pod in _pods(fedsilo, QUICKSTART):
        for container in pod["spec"]["containers"]:
            assert "command" not in container, (pod["metadata"]["name"], container["name"])


def test_quickstart_status_carries_the_accuracy_of_its_last_model(quickstart_run: dict[str, Any]) -> None:
    # The closing evaluation of round 3's model, by the silos on their own data.
    assert quickstart_run["accuracyRound"] == 3
    assert 0.0 <= quickstart_run["accuracy"] <= 1.0


#: The killed-pods job: slower rounds (more local epochs than the quickstart's 2) and rounds
#: enough that it is still running after both kills and both rebuilds. A round of this job
#: takes about a second on an idle node: at 10 rounds it ended before the first kill.
KILLED = "killed"
# On a quiet machine a round of this job takes about a second; the job must outlast a pod's
# rebuild (the operator's 15-second check, then the new pod's start) with room to spare.
KILLED_ROUNDS = 120
KILLED_EPOCHS = 12
#: The rounds at which the silo's trainer and then the aggregator are deleted.
TRAINER_KILLED_AT = 1
AGGREGATOR_KILLED_AT = 3


@dataclass(frozen=True)
class KilledRun:
    """What the killed-pods job went through and how it ended."""

    trainer_rebuilt: bool
    aggregator_killed_after: int
    status: dict[str, Any]
    state_dir: Path


def _round(cluster: Cluster, job: str) -> int:
    return int(job_status(cluster, job).get("round") or 0)


def _delete_and_wait_for_a_new_pod(cluster: Cluster, namespace: str, selector: str) -> bool:
    """``kubectl delete pod`` the one pod ``selector`` picks, as a user does; whether another replaced it.

    The default grace period (30 s): the images' entry points stop on SIGTERM (as PID 1 they
    would ignore it without a handler), so the pod is gone in about a second and the job's
    rounds do not run on meanwhile (an ignored SIGTERM let a quiet machine finish the job, 80
    rounds, before the pod was gone, and the operator rightly skips rebuilding a finished job).
    """
    victim = cluster.get("pods", "-n", namespace, "-l", selector)["items"][0]
    name = victim["metadata"]["name"]
    cluster.kubectl("delete", "pod", name, "-n", namespace, "--wait=true", timeout=300)

    def replaced() -> bool:
        pods = cluster.get("pods", "-n", namespace, "-l", selector)["items"]
        return any(pod["metadata"]["uid"] != victim["metadata"]["uid"] for pod in pods)

    return bool(cluster.wait_for(f"a new pod for {selector}", replaced, timeout=300, diagnose=(namespace,)))


@pytest.fixture(scope="module")
def killed_run(fedsilo: Cluster) -> Iterator[KilledRun]:
    """One job, two kills (a silo's trainer pod, then the aggregator's pod), run to its end.

    One job for both kills: each whole job on the cluster costs minutes of CI.
    """
    delete_job(fedsilo, KILLED)
    training = {**job_manifest(KILLED, rounds=1)["spec"]["training"], "localEpochs": KILLED_EPOCHS}
    apply_quickstart(fedsilo, job_manifest(KILLED, rounds=KILLED_ROUNDS, training=training))
    fedsilo.wait_for(
        f"job {KILLED} to complete round {TRAINER_KILLED_AT}",
        lambda: _round(fedsilo, KILLED) >= TRAINER_KILLED_AT,
        timeout=600,
        diagnose=(JOB_NAMESPACE, *SILOS),
    )
    trainer = f"{JOB_LABEL}={KILLED},{SILO_LABEL}=hospital-b,{COMPONENT_LABEL}={TRAINER}"
    rebuilt = _delete_and_wait_for_a_new_pod(fedsilo, "hospital-b", trainer)
    fedsilo.wait_for(
        f"job {KILLED} to complete round {AGGREGATOR_KILLED_AT}",
        lambda: _round(fedsilo, KILLED) >= AGGREGATOR_KILLED_AT,
        timeout=600,
        diagnose=(JOB_NAMESPACE, *SILOS),
    )
    killed_after = _round(fedsilo, KILLED)
    assert killed_after < KILLED_ROUNDS, "the job ended before its aggregator could be killed: give it more rounds"
    aggregator = f"{JOB_LABEL}={KILLED},{COMPONENT_LABEL}={AGGREGATOR}"
    _delete_and_wait_for_a_new_pod(fedsilo, JOB_NAMESPACE, aggregator)
    status = wait_finished(fedsilo, KILLED)
    state_dir, _ = aggregator_state_dir(fedsilo, KILLED)
    yield KilledRun(rebuilt, killed_after, status, state_dir)
    delete_job(fedsilo, KILLED)


def test_a_silo_pod_killed_mid_job_is_rebuilt_and_the_job_ends(killed_run: KilledRun) -> None:
    assert killed_run.trainer_rebuilt
    status = killed_run.status
    if status["phase"] == "Failed":
        # Failing is allowed, silently is not: a condition says why.
        assert any(c.get("message") for c in status.get("conditions", []) if c.get("status") == "True"), status
    else:
        assert status["phase"] == "Succeeded", status


def test_the_aggregator_pod_killed_mid_job_resumes_from_its_checkpoint_to_the_rounds_asked_for(
    killed_run: KilledRun,
) -> None:
    status = killed_run.status
    assert status["phase"] == "Succeeded", status
    assert status["round"] == KILLED_ROUNDS
    assert status["latestModel"]["round"] == KILLED_ROUNDS
    audit, key = killed_run.state_dir / "audit.jsonl", killed_run.state_dir / "aggregator-key.pub"
    verified = subprocess.run(
        [sys.executable, "-m", "fedsilo", "audit", "verify", str(audit), "--key", str(key)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # The new pod went on from the last round the old one checkpointed, not from round 0.
    resumed = [
        record["round"]
        for record in map(json.loads, audit.read_text().splitlines())
        if record["kind"] == "operation" and record["operation"] == "resume"
    ]
    assert len(resumed) == 1, resumed
    assert killed_run.aggregator_killed_after <= resumed[0] < KILLED_ROUNDS
