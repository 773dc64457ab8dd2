"""The job policy runs before anything of a job exists: with the operator running against the real
API server, each documented denial ends in a Denied condition naming the reason, a Warning Event,
and no child at all; an installation's parameters change the verdict; the local run refuses too."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsilo.kube import KubeApi
from fedsilo.operator import PolicyParameters
from fedsilo_testing import ControlPlane

from .conftest import EXAMPLES, apply_objects, children, condition, get, running_operator, unique, wait_for

pytestmark = pytest.mark.integration

SILOS = ("hospital-a", "hospital-b", "hospital-c")
# Each documented denial (docs/policy-input.md) with the spec that triggers it.
DENIALS: dict[str, dict[str, Any]] = {
    "too_few_silos_for_masking": {"silos": ["hospital-a", "hospital-b"]},
    "epsilon_above_organization_max": {"policy": {"maxEpsilon": 500.0}},
    "epsilon_ceiling_missing": {
        "privacy": {"mode": "silo", "noiseMultiplier": 1.0},
        "policy": {"dataClass": "sensitive"},
    },
    "aggregation_not_allowed": {"aggregation": {"mode": "plain"}, "policy": {"dataClass": "sensitive"}},
    "target_epsilon_above_ceiling": {
        "privacy": {"mode": "silo", "targetEpsilon": 8.0},
        "policy": {"maxEpsilon": 4.0},
    },
}


def job(name: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"silos": list(SILOS), "minSilos": 2, "model": {"builtin": "logistic_regression"}}
    base.update(spec)
    return {"apiVersion": "fedsilo.io/v1alpha1", "kind": "FederatedJob", "metadata": {"name": name}, "spec": base}


def silo(name: str) -> dict[str, Any]:
    return {"apiVersion": "fedsilo.io/v1alpha1", "kind": "Silo", "metadata": {"name": name}, "spec": {}}


@pytest.fixture(scope="module")
def namespace(cluster: ControlPlane) -> Iterator[str]:
    name = cluster.create_namespace(unique("admission"))
    with running_operator([name], cluster.kubeconfig, parameters=PolicyParameters()):
        yield name


def job_children(admin: KubeApi, namespace: str, job_name: str) -> set[tuple[str, str]]:
    return {key for key, obj in children(admin, namespace).items() if job_name in key[1]}


@pytest.mark.parametrize("code", DENIALS, ids=list(DENIALS))
def test_a_denied_job_gets_a_condition_an_event_and_no_children(
    cluster: ControlPlane, admin: KubeApi, namespace: str, code: str
) -> None:
    name = f"denied-{code.replace('_', '-')}"
    apply_objects(cluster, namespace, *(silo(s) for s in SILOS), job(name, **DENIALS[code]))
    denied = wait_for(
        lambda: condition(get(cluster, namespace, "federatedjob", name), "Denied"), "a Denied condition", timeout=60
    )
    assert denied["status"] == "True" and denied["reason"] == "PolicyDenied"
    assert f"{code}: " in denied["message"]
    status = get(cluster, namespace, "federatedjob", name)["status"]
    assert status["phase"] == "Denied" and "endpoint" not in status
    record = status["admission"]
    assert record["allowed"] is False and any(r.startswith(f"{code}: ") for r in record["reasons"])
    assert record["inputDigest"].startswith("sha256:") and record["policyRevision"]
    events = get(cluster, namespace, "events", "--field-selector", f"involvedObject.name={name}")["items"]
    assert any(e["reason"] == "Denied" and code in e["message"] and e["type"] == "Warning" for e in events)
    assert job_children(admin, namespace, name) == set(), "nothing of a denied job exists"


def test_an_admitted_job_next_to_them_gets_its_children(cluster: ControlPlane, admin: KubeApi, namespace: str) -> None:
    apply_objects(cluster, namespace, *(silo(s) for s in SILOS), job("admitted"))
    wait_for(
        lambda: ("Deployment", "admitted-aggregator") in children(admin, namespace), "the admitted job's aggregator"
    )
    record = wait_for(
        lambda: get(cluster, namespace, "federatedjob", "admitted")["status"].get("admission"), "the admission record"
    )
    assert record["allowed"] is True and record["reasons"] == []


def test_an_installation_may_admit_two_silo_masking(cluster: ControlPlane, admin: KubeApi) -> None:
    name = cluster.create_namespace(unique("lenient"))
    with running_operator([name], cluster.kubeconfig, parameters=PolicyParameters(masked_min_silos=2)):
        apply_objects(
            cluster, name, silo("hospital-a"), silo("hospital-b"), job("pair", silos=["hospital-a", "hospital-b"])
        )
        wait_for(lambda: ("Deployment", "pair-aggregator") in children(admin, name), "the two-silo job's aggregator")
        assert not condition(get(cluster, name, "federatedjob", "pair"), "Denied")


def test_the_local_run_refuses_a_denied_job_before_creating_anything(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all((EXAMPLES / "quickstart.yaml").read_text()))
    documents[0]["spec"]["policy"] = {"maxEpsilon": 500.0}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    result = subprocess.run(
        [sys.executable, "-m", "fedsilo", "run", str(path), "--workdir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "epsilon_above_organization_max" in result.stderr and "nothing was created" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_bad_parameters_file_stops_the_operator_command_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "params.json"
    path.write_text(json.dumps({"masked_min_silos": "3"}))
    result = subprocess.run(
        [sys.executable, "-m", "fedsilo", "operator", "--role", "hub", "--policy-params", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "masked_min_silos" in result.stderr


def test_stricter_parameters_later_do_not_deny_a_running_job(cluster: ControlPlane, admin: KubeApi) -> None:
    name = cluster.create_namespace(unique("running"))
    with running_operator([name], cluster.kubeconfig, parameters=PolicyParameters()):
        apply_objects(cluster, name, *(silo(s) for s in SILOS), job("steady"))
        wait_for(lambda: ("Deployment", "steady-aggregator") in children(admin, name), "the job's aggregator")
        wait_for(lambda: get(cluster, name, "federatedjob", "steady")["status"].get("endpoint"), "its endpoint")
    with running_operator([name], cluster.kubeconfig, parameters=PolicyParameters(masked_min_silos=4)):
        cluster.kubectl("patch", "-n", name, "federatedjob", "steady", "--type=merge", "-p", '{"spec":{"rounds":12}}')
        wait_for(
            lambda: "rounds: 12" in children(admin, name)[("ConfigMap", "steady-job")]["data"]["job.yaml"],
            "the edit applied under the new parameters",
        )
        assert not condition(get(cluster, name, "federatedjob", "steady"), "Denied")
