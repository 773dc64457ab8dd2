"""The real control plane: kube-apiserver + etcd with RBAC and PodSecurity, driven by kubectl."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from fedsilo_testing import ControlPlane, KubectlError
from fedsilo_testing.tools import is_overridden, pinned_version

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    # The control plane is shared by the session and never deletes a namespace for good.
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pod(name: str, namespace: str, security_context: dict[str, Any], pod_security: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "securityContext": pod_security,
            "containers": [
                {"name": "main", "image": "registry.k8s.io/pause:3.10", "securityContext": security_context}
            ],
        },
    }


RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 65532,
}
RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def test_kubectl_lists_the_namespaces_the_api_server_creates(control_plane: ControlPlane) -> None:
    names = json.loads(control_plane.kubectl("get", "namespaces", "-o", "json").stdout)
    assert {"default", "kube-system", "kube-public"} <= {item["metadata"]["name"] for item in names["items"]}


def test_client_and_server_report_the_pinned_kubernetes_version(control_plane: ControlPlane) -> None:
    versions = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    server = control_plane.get("/version")
    assert versions["serverVersion"]["gitVersion"] == server["gitVersion"]
    if not is_overridden("kube-apiserver"):
        assert server["gitVersion"] == pinned_version("kube-apiserver")
    if not is_overridden("kubectl"):
        assert versions["clientVersion"]["gitVersion"] == pinned_version("kubectl")


def test_pod_security_admission_rejects_a_privileged_pod_in_a_restricted_namespace(
    control_plane: ControlPlane,
) -> None:
    namespace = control_plane.create_namespace(unique("restricted"))
    privileged = pod("privileged", namespace, {"privileged": True}, {})

    with pytest.raises(KubectlError) as rejected:
        control_plane.apply(privileged)

    assert 'violates PodSecurity "restricted:latest"' in rejected.value.stderr
    assert "privileged" in rejected.value.stderr
    assert control_plane.kubectl("get", "pod", "privileged", "-n", namespace, check=False).returncode != 0


def test_a_pod_that_meets_the_restricted_profile_is_admitted(control_plane: ControlPlane) -> None:
    namespace = control_plane.create_namespace(unique("restricted"))

    control_plane.apply(pod("compliant", namespace, RESTRICTED_CONTAINER, RESTRICTED_POD))

    assert (
        control_plane.kubectl("get", "pod", "compliant", "-n", namespace, "-o", "name").stdout.strip()
        == "pod/compliant"
    )


def test_an_unlabelled_namespace_admits_a_privileged_pod(control_plane: ControlPlane) -> None:
    # The contrast that shows the rejection above comes from the namespace's label.
    namespace = control_plane.create_namespace(unique("privileged"), restricted=False)

    control_plane.apply(pod("privileged", namespace, {"privileged": True}, {}))


def test_rbac_denies_a_service_account_reading_secrets_it_was_not_granted(control_plane: ControlPlane) -> None:
    namespace = control_plane.create_namespace(unique("rbac"))
    control_plane.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader", "namespace": namespace}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "configmap-reader", "namespace": namespace},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "reader-reads-configmaps", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    reader = f"--as=system:serviceaccount:{namespace}:reader"

    denied = control_plane.kubectl("get", "secrets", "-n", namespace, reader, check=False)
    granted = control_plane.kubectl("get", "configmaps", "-n", namespace, reader, check=False)

    assert denied.returncode != 0
    assert f'User "system:serviceaccount:{namespace}:reader" cannot list resource "secrets"' in denied.stderr
    assert granted.returncode == 0, granted.stderr
    assert (
        control_plane.kubectl("auth", "can-i", "get", "secrets", "-n", namespace, reader, check=False).stdout.strip()
        == "no"
    )


def test_the_api_server_issues_service_account_tokens_that_authenticate(control_plane: ControlPlane) -> None:
    namespace = control_plane.create_namespace(unique("tokens"))

    token = control_plane.kubectl("create", "token", "default", "-n", namespace, "--duration=10m").stdout.strip()

    as_default = control_plane.token_kubeconfig(token, f"{namespace}-default")
    whoami = json.loads(control_plane.kubectl("auth", "whoami", "-o", "json", kubeconfig=as_default).stdout)
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:default"


def test_a_control_plane_of_its_own_stops_without_leaving_processes(tmp_path: Path) -> None:
    with ControlPlane(tmp_path / "plane") as plane:
        pids = plane.pids
        assert plane.kubectl("get", "namespace", "default", "-o", "name").stdout.strip() == "namespace/default"

    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
