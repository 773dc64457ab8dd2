"""No reach beyond consent: a Silo's workload namespace other than its own is used only when that
namespace accepts it (checked by the operator), and the shipped ValidatingAdmissionPolicy refuses
system namespaces and names that are no namespace at admission."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fedsilo.kube import SECRET, KubeApi
from fedsilo.operator import WORKLOAD_NAMESPACE_ANNOTATION
from fedsilo_testing import ControlPlane, KubectlError

from .conftest import ROOT, apply_objects, children, condition, get, running_operator, unique, wait_for

pytestmark = pytest.mark.integration

ADMISSION = ROOT / "deploy" / "admission"


def silo(name: str, workload: str) -> dict[str, Any]:
    return {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": "Silo",
        "metadata": {"name": name, "annotations": {WORKLOAD_NAMESPACE_ANNOTATION: workload}},
        "spec": {},
    }


def refusal(cluster: ControlPlane, namespace: str, obj: dict[str, Any]) -> str | None:
    """The API server's refusal of ``obj`` (server-side dry run), or None if it accepts it."""
    try:
        cluster.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(obj))
    except KubectlError as refused:
        return refused.stderr
    return None


@pytest.fixture(scope="module")
def admission(cluster: ControlPlane) -> str:
    """The shipped policy and binding, applied and in force; a namespace to try them in."""
    cluster.kubectl("apply", "--server-side", "-f", str(ADMISSION))
    namespace = cluster.create_namespace(unique("vap"))
    deadline = time.monotonic() + 60
    # The API server compiles a new policy asynchronously: wait until it refuses.
    while refusal(cluster, namespace, silo("probe", "kube-system")) is None:
        assert time.monotonic() < deadline, "the ValidatingAdmissionPolicy never took effect"
        time.sleep(0.5)
    return namespace


@pytest.mark.parametrize(
    ("workload", "said"),
    [
        ("kube-system", "names a system namespace"),
        ("kube-public", "names a system namespace"),
        ("default", "names a system namespace"),
        ("Not_A_Namespace", "is not a namespace name"),
        ("a" * 64, "is not a namespace name"),
    ],
)
def test_the_admission_policy_refuses_a_workload_namespace_that_cannot_be_right(
    cluster: ControlPlane, admission: str, workload: str, said: str
) -> None:
    refused = refusal(cluster, admission, silo("intruder", workload))
    assert refused is not None and said in refused


def test_the_admission_policy_lets_a_silo_name_its_own_or_a_partner_namespace(
    cluster: ControlPlane, admission: str
) -> None:
    assert refusal(cluster, admission, silo("own", admission)) is None
    assert refusal(cluster, admission, silo("partner", "partner-ns")) is None


def test_the_workload_namespace_cannot_move_after_creation(cluster: ControlPlane, admission: str) -> None:
    apply_objects(cluster, admission, silo("settled", admission))
    with pytest.raises(KubectlError) as refused:
        cluster.kubectl(
            "annotate", "--overwrite", "-n", admission, "silo", "settled", f"{WORKLOAD_NAMESPACE_ANNOTATION}=elsewhere"
        )
    assert "cannot change once the Silo exists" in refused.value.stderr


@pytest.fixture(scope="module")
def spaces(cluster: ControlPlane) -> Iterator[dict[str, str]]:
    names = {role: cluster.create_namespace(unique(role)) for role in ("writer", "victim")}
    with running_operator(names.values(), cluster.kubeconfig):
        yield names


def test_a_silo_cannot_reach_into_a_namespace_that_has_not_accepted_it(
    cluster: ControlPlane, admin: KubeApi, spaces: dict[str, str]
) -> None:
    writer, victim = spaces["writer"], spaces["victim"]
    apply_objects(cluster, writer, silo("reacher", victim))
    refused = wait_for(
        lambda: (c := condition(get(cluster, writer, "silo", "reacher"), "Ready")) and c.get("reason") != "" and c,
        "the Silo's Ready condition",
        timeout=60,
    )
    assert refused["status"] == "False" and refused["reason"] == "WorkloadNamespaceNotConsented"
    assert f"kubectl annotate namespace {victim} fedsilo.io/accept-silos={writer}/reacher" in refused["message"]
    events = get(cluster, writer, "events", "--field-selector", "involvedObject.name=reacher")["items"]
    assert any(e["reason"] == "WorkloadNamespaceNotConsented" and e["type"] == "Warning" for e in events)
    assert children(admin, victim) == {}, "nothing created in the namespace that did not consent"

    # The victim's owner consents: now the silo's identity is made there.
    cluster.kubectl("annotate", "namespace", victim, f"fedsilo.io/accept-silos={writer}/reacher")
    wait_for(
        lambda: ("Secret", "reacher-identity") in children(admin, victim), "the identity after consent", timeout=90
    )
    assert admin.get(SECRET, writer, "reacher-identity") is None
