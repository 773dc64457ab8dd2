"""The charts install with the real helm on a real kube-apiserver (a control plane of this
module's own: the charts create cluster-wide objects, CRDs and admission policies, that other
tests' control plane must not see), in namespaces that enforce Pod Security "restricted":

- the hub with two replicas (peering objects of a kind its crds/ folder defines) and its
  admission policy, which then refuses Silos that name system namespaces or no namespace;
- a partner's silo chart beside it (``--skip-crds``: the hub's release owns the CRDs), with a
  real identity of its own;
- every operator pod is admitted by the API server's PodSecurity plugin;
- uninstalling the hub keeps the CRDs (crds.keep).

The control plane has no controller-manager, so Deployments never get pods: a Pod built from
each Deployment's template is created with a server-side dry run, which runs admission.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsilo.identity import CertificateAuthority, SigningKey
from fedsilo_testing import ControlPlane
from tests.operator.conftest import wait_for

from .conftest import CI, HUB_CHART, SILO_CHART, Helm

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane(tmp_path_factory.mktemp("charts-control-plane")) as own:
        yield own


def install(helm: Helm, plane: ControlPlane, release: str, chart: Path, namespace: str, *args: str) -> None:
    helm.run("install", release, str(chart), "--namespace", namespace, *args, kubeconfig=plane.kubeconfig)


def live(plane: ControlPlane, *args: str) -> Any:
    return json.loads(plane.kubectl("get", *args, "-o", "json").stdout)


def dry_run_pods(plane: ControlPlane, namespace: str, release: str) -> list[str]:
    """Create (server-side dry run) a Pod from each of the release's Deployments; return their names."""
    deployments = live(plane, "deployments", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}")["items"]
    assert deployments, f"release {release} has no Deployment in {namespace}"
    names = []
    for deployment in deployments:
        template = deployment["spec"]["template"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": deployment["metadata"]["name"],
                "namespace": namespace,
                "labels": template["metadata"]["labels"],
            },
            "spec": template["spec"],
        }
        result = plane.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
        assert result.returncode == 0, f"PodSecurity refused {pod['metadata']['name']}:\n{result.stderr}"
        assert "would violate" not in result.stderr, result.stderr
        names.append(pod["metadata"]["name"])
    return names


@pytest.fixture(scope="module")
def hub(helm: Helm, plane: ControlPlane) -> dict[str, str]:
    """The hub chart installed with two replicas and its admission policy."""
    system, jobs = plane.create_namespace(unique("fedsilo-system")), plane.create_namespace(unique("fedsilo-hub"))
    install(
        helm,
        plane,
        "hub",
        HUB_CHART,
        system,
        "--values",
        str(CI[HUB_CHART] / "two-replicas-values.yaml"),
        "--set",
        f"namespaces={{{jobs}}}",
        "--set",
        "admissionPolicies.enabled=true",
    )
    plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/silos.fedsilo.io", "crd/federatedjobs.fedsilo.io"
    )
    # The API server loads a new admission policy a moment after it is created.
    probe = silo("probe", "kube-system")
    wait_for(
        lambda: plane.kubectl("apply", "--dry-run=server", "-n", jobs, "-f", "-", input=probe, check=False).returncode,
        "the admission policy in effect",
        timeout=60,
    )
    return {"system": system, "jobs": jobs}


def test_the_hub_installs_with_peering_objects_and_restricted_pods(plane: ControlPlane, hub: dict[str, str]) -> None:
    peering = live(plane, "kopfpeerings", "-n", hub["jobs"])["items"]
    assert [item["metadata"]["name"] for item in peering] == ["fedsilo-hub"]
    assert dry_run_pods(plane, hub["system"], "hub") == ["hub-fedsilo"]
    rolebindings = live(plane, "rolebindings", "-n", hub["jobs"])["items"]
    assert {b["metadata"]["name"] for b in rolebindings} == {"hub-fedsilo-operator", "hub-fedsilo-hub"}


def silo(name: str, annotation: str | None) -> str:
    annotations = {"fedsilo.io/workload-namespace": annotation} if annotation is not None else {}
    return json.dumps(
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "Silo",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"displayName": name},
        }
    )


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ("kube-system", "is a system namespace or the fedsilo operator's own"),
        ("kube-anything", "is a system namespace"),
        ("default", "is a system namespace"),
        ("Not_A_Namespace", "is not a namespace name"),
        ("a" * 64, "is not a namespace name"),
    ],
    ids=["kube-system", "kube-prefix", "default", "not-a-name", "too-long"],
)
def test_the_admission_policy_refuses_a_silo_aimed_at_a_system_or_invalid_namespace(
    plane: ControlPlane, hub: dict[str, str], annotation: str, message: str
) -> None:
    result = plane.kubectl("apply", "-n", hub["jobs"], "-f", "-", input=silo(unique("s"), annotation), check=False)
    assert result.returncode != 0, f"a Silo aimed at {annotation!r} was admitted"
    assert "ValidatingAdmissionPolicy" in result.stderr and message in result.stderr, result.stderr
    assert "fedsilo.io/workload-namespace" in result.stderr


def test_the_admission_policy_refuses_the_operators_own_namespace(plane: ControlPlane, hub: dict[str, str]) -> None:
    result = plane.kubectl("apply", "-n", hub["jobs"], "-f", "-", input=silo("s", hub["system"]), check=False)
    assert result.returncode != 0 and "the fedsilo operator's own" in result.stderr, result.stderr


def test_the_admission_policy_refuses_moving_a_silo(plane: ControlPlane, hub: dict[str, str]) -> None:
    name = unique("moving")
    plane.kubectl("apply", "-n", hub["jobs"], "-f", "-", input=silo(name, "hospital-a"))
    result = plane.kubectl("apply", "-n", hub["jobs"], "-f", "-", input=silo(name, "hospital-b"), check=False)
    assert result.returncode != 0, "the workload namespace changed under an existing Silo"
    assert 'cannot change once the Silo exists (from "hospital-a" to "hospital-b")' in result.stderr, result.stderr


@pytest.mark.parametrize("annotation", [None, "", "hospital-a"], ids=["none", "empty", "partner-namespace"])
def test_the_admission_policy_admits_ordinary_silos(
    plane: ControlPlane, hub: dict[str, str], annotation: str | None
) -> None:
    plane.kubectl("apply", "--dry-run=server", "-n", hub["jobs"], "-f", "-", input=silo(unique("s"), annotation))


def test_a_partner_installs_the_silo_chart_beside_the_hub_with_its_own_identity(
    helm: Helm, plane: ControlPlane, hub: dict[str, str], tmp_path: Path
) -> None:
    workload = plane.create_namespace(unique("hospital-b"))
    system = plane.create_namespace(unique("hospital-b-system"))
    key = SigningKey.generate().public_key
    ca = CertificateAuthority.create("hospital-b identity CA")
    values = yaml.safe_load((CI[SILO_CHART] / "existing-secret-values.yaml").read_text())
    values["identity"] |= {"publicKey": key.to_base64(), "caCertificate": ca.certificate_pem.decode()}
    values["silo"]["namespace"] = hub["jobs"]
    values["workloadNamespace"] = workload
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    # The hub's release owns the CRDs here: helm would re-apply the silo chart's crds/ folder
    # over them under the same field manager, dropping the hub's keep annotation.
    install(helm, plane, "hospital-b", SILO_CHART, system, "--values", str(path), "--skip-crds")

    registered = live(plane, "silo", "hospital-b", "-n", hub["jobs"])
    assert registered["spec"]["identity"]["publicKey"] == key.to_base64()
    assert registered["metadata"]["annotations"]["fedsilo.io/workload-namespace"] == workload
    public = live(plane, "configmap", "hospital-b-identity-public", "-n", workload)
    assert public["data"]["signing-key.pub"].strip() == key.to_base64()
    deny = live(plane, "networkpolicy", "hospital-b-fedsilo-silo-default-deny", "-n", workload)
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert dry_run_pods(plane, system, "hospital-b") == ["hospital-b-fedsilo-silo"]
    crd = live(plane, "crd", "silos.fedsilo.io")
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == "hub"
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_a_partner_alone_in_its_cluster_gets_the_crds_from_the_silo_chart(helm: Helm, tmp_path: Path) -> None:
    with ControlPlane(tmp_path / "partner-cluster") as partner:
        namespace = partner.create_namespace("hospital-a")
        install(
            helm, partner, "hospital-a", SILO_CHART, namespace, "--values", str(CI[SILO_CHART] / "default-values.yaml")
        )
        spec = live(partner, "silo", "hospital-a", "-n", namespace)["spec"]
        assert not any(spec.values()), f"only the CRD's empty defaults, nothing the partner did not give: {spec}"
        assert dry_run_pods(partner, namespace, "hospital-a") == ["hospital-a-fedsilo-silo"]


def test_uninstalling_the_hub_keeps_the_crds_and_every_silo(
    helm: Helm, plane: ControlPlane, hub: dict[str, str]
) -> None:
    plane.kubectl("apply", "-n", hub["jobs"], "-f", "-", input=silo("kept", None))
    helm.run("uninstall", "hub", "--namespace", hub["system"], kubeconfig=plane.kubeconfig)
    assert live(plane, "crd", "silos.fedsilo.io")["metadata"]["name"] == "silos.fedsilo.io"
    assert live(plane, "silo", "kept", "-n", hub["jobs"])["metadata"]["name"] == "kept"
    assert plane.kubectl("get", "validatingadmissionpolicies", "-o", "name").stdout.strip() == ""
