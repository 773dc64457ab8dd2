"""The shipped operator Deployment has requests and limits, passes the restricted Pod Security
profile on the real API server, and hands the operator the policy parameters it mounts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsilo.operator import PolicyParameters
from fedsilo_testing import ControlPlane

from .conftest import ROOT, unique

DEPLOYMENT = ROOT / "deploy" / "operator" / "deployment.yaml"


def documents() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(DEPLOYMENT.read_text())}


def test_the_operator_asks_for_and_is_capped_at_cpu_and_memory() -> None:
    (container,) = documents()["Deployment"]["spec"]["template"]["spec"]["containers"]
    for part in ("requests", "limits"):
        assert set(container["resources"][part]) == {"cpu", "memory"}


def test_the_mounted_parameters_are_the_ones_the_operator_reads(tmp_path: Path) -> None:
    found = documents()
    (container,) = found["Deployment"]["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    path = Path(args[args.index("--policy-params") + 1])
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "policy-params"]
    assert path.parent == Path(mount["mountPath"]) and path.name in found["ConfigMap"]["data"]
    assert PolicyParameters.parse(found["ConfigMap"]["data"][path.name]).overrides() == {}


@pytest.mark.integration
def test_the_api_server_admits_the_deployment_under_restricted_pod_security(cluster: ControlPlane) -> None:
    namespace = cluster.create_namespace(unique("operator"))
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    account = yaml.safe_load((ROOT / "deploy" / "rbac" / "serviceaccount.yaml").read_text())
    account["metadata"]["namespace"] = namespace
    cluster.kubectl("create", "-f", "-", input=json.dumps(account))
    found = documents()
    # Pod Security judges pods, not Deployments: submit the template as the pod it becomes.
    template = found["Deployment"]["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "operator", **template["metadata"]}}
    pod["spec"] = template["spec"]
    for document in (*found.values(), pod):
        document["metadata"]["namespace"] = namespace
        cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(document))
