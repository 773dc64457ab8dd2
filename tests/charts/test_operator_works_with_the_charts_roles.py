"""The operator does its whole job holding only what the charts grant: installed with the real
helm, then run as the chart's ServiceAccount (a TokenRequest token, so every request, kopf's
watches included, is authorized as in a cluster), it creates a job's hub and silo objects
without one "forbidden".

Two layouts: one cluster where the hub chart's operator runs both roles, and a hub chart beside
a partner's silo chart, each operator with its own roles.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fedsilo.kube import KubeApi, load_access
from fedsilo.operator import WORKLOAD_NAMESPACE_ANNOTATION, OperatorRole
from fedsilo_testing import ControlPlane, install_crds
from tests.operator.conftest import (
    children,
    hub_children,
    running_operator,
    service_account_kubeconfig,
    silo_children,
    wait_for,
)

from .conftest import HUB_CHART, ROOT, SILO_CHART, Helm

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane(tmp_path_factory.mktemp("roles-control-plane")) as own:
        # The CRDs once for the module; every release here installs with its CRDs off.
        install_crds(own)
        own.kubectl("apply", "--server-side", "-f", str(ROOT / "crds" / "kopf.dev_peerings.yaml"))
        yield own


@pytest.fixture(scope="module")
def admin(plane: ControlPlane) -> KubeApi:
    return KubeApi(load_access(plane.kubeconfig), "fedsilo-tests")


def install(helm: Helm, plane: ControlPlane, release: str, chart: Path, namespace: str, *sets: str) -> None:
    """``helm install`` without CRDs (the module installed them) with ``--set`` pairs."""
    args = [arg for pair in sets for arg in ("--set", pair)]
    if chart == HUB_CHART:
        args += ["--set", "crds.enabled=false"]
    helm.run(
        "install", release, str(chart), "--namespace", namespace, "--skip-crds", *args, kubeconfig=plane.kubeconfig
    )


def job(silos: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": "FederatedJob",
        "metadata": {"name": "credit"},
        "spec": {"silos": silos, "minSilos": 2, "model": {"builtin": "mlp"}},
    }


def silo(name: str, workload: str) -> dict[str, Any]:
    return {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": "Silo",
        "metadata": {"name": name, "annotations": {WORKLOAD_NAMESPACE_ANNOTATION: workload}},
        "spec": {"displayName": name},
    }


def accept(plane: ControlPlane, workload: str, *silos: str) -> None:
    """The workload namespace's owner consents to hosting these Silos (``<namespace>/<name>``), as
    docs/partner-onboarding.md asks; an operator that checks consent creates nothing there without it."""
    plane.kubectl("annotate", "--overwrite", "namespace", workload, f"fedsilo.io/accept-silos={','.join(silos)}")


def placed(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """``obj`` in ``namespace``."""
    return {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}


def test_the_hub_charts_operator_runs_both_roles_with_the_charts_grants(
    helm: Helm, plane: ControlPlane, admin: KubeApi, tmp_path: Path
) -> None:
    system, hub, workload = (plane.create_namespace(unique(p)) for p in ("fedsilo-system", "hub", "silos"))
    install(
        helm, plane, "one", HUB_CHART, system, "role=both", f"namespaces={{{hub}}}", f"siloNamespaces={{{workload}}}"
    )
    accept(plane, workload, f"{hub}/bank-a", f"{hub}/bank-b")
    kubeconfig = service_account_kubeconfig(plane, system, "one-fedsilo", tmp_path / "operator.kubeconfig")
    with running_operator([hub, workload], kubeconfig) as runner:
        plane.apply(*(placed(o, hub) for o in (silo("bank-a", workload), silo("bank-b", workload))))
        plane.apply(placed(job(["bank-a", "bank-b"]), hub))
        wait_for(lambda: set(children(admin, hub)) == hub_children("credit"), "the hub's objects", timeout=60)
        expected = silo_children("credit", "bank-a") | silo_children("credit", "bank-b")
        wait_for(lambda: set(children(admin, workload)) == expected, "the silos' objects", timeout=60)
    assert "forbidden" not in runner.output.lower(), runner.output[-3000:]


def test_a_hub_and_a_partners_silo_chart_each_work_with_their_own_grants(
    helm: Helm, plane: ControlPlane, admin: KubeApi, tmp_path: Path
) -> None:
    hub_system, hub, partner_system, workload = (
        plane.create_namespace(unique(p)) for p in ("fedsilo-system", "hub", "partner-system", "partner")
    )
    install(helm, plane, "hub", HUB_CHART, hub_system, f"namespaces={{{hub}}}")
    install(
        helm, plane, "partner", SILO_CHART, partner_system, "silo.name=bank-a", f"silo.namespace={hub}",
        f"workloadNamespace={workload}",
    )  # fmt: skip
    accept(plane, workload, f"{hub}/bank-a", f"{hub}/bank-b")
    hub_config = service_account_kubeconfig(plane, hub_system, "hub-fedsilo", tmp_path / "hub.kubeconfig")
    silo_config = service_account_kubeconfig(
        plane, partner_system, "partner-fedsilo-silo", tmp_path / "silo.kubeconfig"
    )
    with (
        running_operator([hub], hub_config, OperatorRole.HUB) as hub_runner,
        running_operator([hub, workload], silo_config, OperatorRole.SILO) as silo_runner,
    ):
        # A second Silo of the same partner beside the chart's own (a job needs two silos).
        plane.apply(placed(silo("bank-b", workload), hub))
        plane.apply(placed(job(["bank-a", "bank-b"]), hub))
        wait_for(lambda: set(children(admin, hub)) == hub_children("credit"), "the hub's objects", timeout=60)
        expected = silo_children("credit", "bank-a") | silo_children("credit", "bank-b")
        wait_for(lambda: set(children(admin, workload)) == expected, "the partner's objects", timeout=60)
    for runner in (hub_runner, silo_runner):
        assert "forbidden" not in runner.output.lower(), runner.output[-3000:]


def test_a_partners_own_identity_secret_makes_its_silo_ready_as_the_onboarding_guide_says(
    helm: Helm, plane: ControlPlane, tmp_path: Path
) -> None:
    """docs/partner-onboarding.md, "bring your own key", command for command."""
    system, workload = plane.create_namespace(unique("partner-system")), plane.create_namespace(unique("partner"))
    accept(plane, workload, f"{system}/hospital-a")
    identities = tmp_path / "identities"
    created = subprocess.run(
        [sys.executable, "-m", "fedsilo", "identity", "create", "--silo", "hospital-a", "--out", str(identities)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    folder = identities / "hospital-a"
    assert (folder / "signing-key.pub").read_text().strip() in created.stdout
    plane.kubectl("-n", workload, "create", "secret", "generic", "hospital-a-identity", f"--from-file={folder}/")
    helm.run(
        "install", "hospital-a", str(SILO_CHART), "--namespace", system, "--skip-crds",
        "--set", "silo.name=hospital-a", "--set", f"workloadNamespace={workload}",
        "--set", "identity.existingSecret=hospital-a-identity",
        "--set-file", f"identity.publicKey={folder / 'signing-key.pub'}",
        "--set-file", f"identity.caCertificate={folder / 'ca.crt'}",
        kubeconfig=plane.kubeconfig,
    )  # fmt: skip
    kubeconfig = service_account_kubeconfig(plane, system, "hospital-a-fedsilo-silo", tmp_path / "silo.kubeconfig")
    with running_operator([system, workload], kubeconfig, OperatorRole.SILO) as runner:
        plane.kubectl("-n", system, "wait", "--for=condition=Ready", "silo/hospital-a", "--timeout=60s")
    status = json.loads(plane.kubectl("-n", system, "get", "silo", "hospital-a", "-o", "json").stdout)["status"]
    assert status["identity"]["publicKey"] == (folder / "signing-key.pub").read_text().strip()
    assert status["identity"]["createdByOperator"] is False
    assert status["identity"]["caCertificate"] == (folder / "ca.crt").read_text()
    assert "forbidden" not in runner.output.lower(), runner.output[-3000:]


def test_two_partners_sharing_a_job_namespace_each_get_their_pods(
    helm: Helm, plane: ControlPlane, admin: KubeApi, tmp_path: Path
) -> None:
    hub_system, hub = plane.create_namespace(unique("fedsilo-system")), plane.create_namespace(unique("hub"))
    # A release name of its own: the hub chart's ClusterRoles are named after the release.
    install(helm, plane, "shared", HUB_CHART, hub_system, f"namespaces={{{hub}}}")
    hub_config = service_account_kubeconfig(plane, hub_system, "shared-fedsilo", tmp_path / "hub.kubeconfig")

    def partner(name: str) -> tuple[str, Path, str]:
        """Install a partner's silo chart (operator and workloads in namespaces of its own); its
        workload namespace, its operator's credentials and the --instance the chart starts it with."""
        system, workload = plane.create_namespace(unique(name)), plane.create_namespace(unique(name))
        accept(plane, workload, f"{hub}/{name}")
        install(helm, plane, name, SILO_CHART, system, f"silo.name={name}", f"silo.namespace={hub}", f"workloadNamespace={workload}")  # fmt: skip
        account = f"{name}-fedsilo-silo"
        args = json.loads(plane.kubectl("-n", system, "get", "deployment", account, "-o", "jsonpath={.spec.template.spec.containers[0].args}").stdout)  # fmt: skip
        (instance,) = (arg.removeprefix("--instance=") for arg in args if arg.startswith("--instance="))
        return workload, service_account_kubeconfig(plane, system, account, tmp_path / f"{name}.kubeconfig"), instance

    def kopf_traces(silo_name: str) -> set[str]:
        """The kopf annotations and finalizers on a Silo."""
        found = json.loads(plane.kubectl("-n", hub, "get", "silo", silo_name, "-o", "json").stdout)["metadata"]
        keys = {key for key in found.get("annotations") or {} if key.partition("/")[0].endswith(".fedsilo.io")}
        return keys | set(found.get("finalizers") or [])

    workload_a, config_a, instance_a = partner("bank-a")
    with (
        running_operator([hub], hub_config, OperatorRole.HUB),
        running_operator([hub, workload_a], config_a, OperatorRole.SILO, instance=instance_a) as runner_a,
    ):
        # The second partner joins while the first one's operator runs.
        workload_b, config_b, instance_b = partner("bank-b")
        with running_operator([hub, workload_b], config_b, OperatorRole.SILO, instance=instance_b) as runner_b:
            plane.apply(placed(job(["bank-a", "bank-b"]), hub))
            wait_for(lambda: set(children(admin, workload_a)) == silo_children("credit", "bank-a"), "bank-a's pods", timeout=60)  # fmt: skip
            wait_for(lambda: set(children(admin, workload_b)) == silo_children("credit", "bank-b"), "bank-b's pods", timeout=60)  # fmt: skip
            # Each Silo carries the kopf state of its own partner's operator only; the shared job, both.
            assert {trace.partition(".")[0] for trace in kopf_traces("bank-a")} == {instance_a}
            assert {trace.partition(".")[0] for trace in kopf_traces("bank-b")} == {instance_b}
            for name in ("bank-a", "bank-b"):
                silo_status = json.loads(plane.kubectl("-n", hub, "get", "silo", name, "-o", "json").stdout)["status"]
                assert {c["type"]: c["status"] for c in silo_status["conditions"]}["Ready"] == "True", silo_status
    for runner in (runner_a, runner_b):
        assert "forbidden" not in runner.output.lower(), runner.output[-3000:]
