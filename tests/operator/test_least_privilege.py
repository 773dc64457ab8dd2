"""The operator runs a job through its whole life as its own ServiceAccount, holding only the
roles the chart ships (``deploy/rbac``), and cannot read a Secret anywhere.

The ServiceAccount's token comes from the TokenRequest API, so every request, kopf's
watches included, is authorized exactly as it would be in a cluster.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsilo.kube import PERSISTENT_VOLUME_CLAIM, SECRET, ApiError, KubeApi, load_access
from fedsilo.operator import WORKLOAD_NAMESPACE_ANNOTATION
from fedsilo_testing import ControlPlane

from .conftest import (
    ROOT,
    apply_objects,
    children,
    condition,
    get,
    hub_children,
    mark_available,
    reconciles,
    running_operator,
    service_account_kubeconfig,
    silo_children,
    unique,
    versions,
    wait_for,
)

pytestmark = pytest.mark.integration

RBAC = ROOT / "deploy" / "rbac"


def shipped_rbac(operator: str, hub: str, silo: str) -> list[dict[str, Any]]:
    """deploy/rbac with the chart's namespaces filled in: the operator's own, one hub, one silo."""
    documents = [d for path in sorted(RBAC.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]
    for document in documents:
        meta = document["metadata"]
        if document["kind"] == "ServiceAccount":
            meta["namespace"] = operator
        if document["kind"] == "RoleBinding":
            meta["namespace"] = hub if meta["name"].endswith("-hub") else silo
        for subject in document.get("subjects", []):
            subject["namespace"] = operator
    return documents


@pytest.fixture(scope="module")
def namespaces(cluster: ControlPlane) -> dict[str, str]:
    names = {role: cluster.create_namespace(unique(role)) for role in ("operator", "hub", "silo")}
    cluster.apply(*shipped_rbac(names["operator"], names["hub"], names["silo"]))
    return names


@pytest.fixture(scope="module")
def kubeconfig(cluster: ControlPlane, namespaces: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("operator") / "operator.kubeconfig"
    return service_account_kubeconfig(cluster, namespaces["operator"], "fedsilo-operator", path)


def manifests(silo_namespace: str) -> list[dict[str, Any]]:
    silos = [
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "Silo",
            "metadata": {"name": name, "annotations": {WORKLOAD_NAMESPACE_ANNOTATION: silo_namespace}},
            "spec": {"displayName": name},
        }
        for name in ("bank-a", "bank-b")
    ]
    job = {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": "FederatedJob",
        "metadata": {"name": "credit"},
        "spec": {
            "silos": ["bank-a", "bank-b"],
            "minSilos": 2,
            "model": {"builtin": "mlp"},
            # A DP job: each silo's sidecar gets a ledger claim, which the roles must allow.
            "privacy": {"mode": "record", "noiseMultiplier": 1.1},
        },
    }
    return [*silos, job]


def test_the_operator_runs_a_job_through_its_life_with_only_the_shipped_roles(
    cluster: ControlPlane, admin: KubeApi, namespaces: dict[str, str], kubeconfig: Path
) -> None:
    hub, silo = namespaces["hub"], namespaces["silo"]
    expected_silo = silo_children("credit", "bank-a") | silo_children("credit", "bank-b")
    accepted = f"fedsilo.io/accept-silos={hub}/bank-a,{hub}/bank-b"
    cluster.kubectl("annotate", "namespace", silo, accepted)
    with running_operator([hub, silo], kubeconfig) as runner:
        apply_objects(cluster, hub, *manifests(silo))
        wait_for(lambda: set(children(admin, silo)) == expected_silo, "the silos' objects, created as the operator")
        wait_for(lambda: set(children(admin, hub)) == hub_children("credit"), "the hub's objects")
        mark_available(cluster, hub, "credit-aggregator")
        wait_for(
            lambda: condition(get(cluster, hub, "federatedjob", "credit"), "Ready").get("status") == "True", "Ready"
        )
    assert "forbidden" not in runner.output.lower(), "the shipped roles cover everything the operator does"
    ledgers = {"bank-a-privacy-ledger", "bank-b-privacy-ledger"}
    assert {c["metadata"]["name"] for c in admin.list(PERSISTENT_VOLUME_CLAIM, silo, {})} == ledgers

    # A restarted operator resumes every object and writes nothing.
    before = versions(admin, [hub, silo])
    handlers = (("federatedjob", "hub"), ("federatedjob", "silo-workloads"), ("silo", "silo-identity"))
    counts = {handler: reconciles(*handler) for handler in handlers}
    resumes = {("federatedjob", "hub"): 1, ("federatedjob", "silo-workloads"): 1, ("silo", "silo-identity"): 2}
    with running_operator([hub, silo], kubeconfig) as runner:
        wait_for(
            lambda: all(reconciles(*handler) >= counts[handler] + resumes[handler] for handler in handlers),
            "the restarted operator resumed the job and both silos",
        )
        time.sleep(1.0)  # let any write that would follow the resume arrive
        assert versions(admin, [hub, silo]) == before

        cluster.kubectl("delete", "-n", hub, "federatedjob", "credit", "--timeout=60s")
        cluster.kubectl("delete", "-n", hub, "silos", "--all", "--timeout=60s")
        assert children(admin, hub) == {} and children(admin, silo) == {}
    assert "forbidden" not in runner.output.lower()
    # The silos' ledgers outlive the job and the Silo objects: their epsilon is a lifetime figure.
    assert {c["metadata"]["name"] for c in admin.list(PERSISTENT_VOLUME_CLAIM, silo, {})} == ledgers


def test_the_operator_cannot_read_a_secret_anywhere(
    cluster: ControlPlane, namespaces: dict[str, str], kubeconfig: Path
) -> None:
    api = KubeApi(load_access(kubeconfig), "fedsilo-operator")
    for namespace in (namespaces["silo"], namespaces["hub"], namespaces["operator"], "kube-system", "default"):
        cluster.kubectl("create", "secret", "generic", "probe", "-n", namespace, "--from-literal=k=v")
        with pytest.raises(ApiError) as refused:
            api.get(SECRET, namespace, "probe")
        assert refused.value.forbidden, namespace
        with pytest.raises(ApiError) as refused:
            api.list(SECRET, namespace, {})
        assert refused.value.forbidden, namespace
    account = f"system:serviceaccount:{namespaces['operator']}:fedsilo-operator"
    answer = cluster.kubectl("auth", "can-i", "create", "secrets", "-n", "kube-system", "--as", account, check=False)
    assert answer.stdout.strip() == "no", "Secrets only in the namespaces it manages"
