"""The cluster itself: a pod runs, DNS answers, and Pod Security "restricted" is enforced
by admission in every namespace fedsilo uses, where every fedsilo pod was admitted with the
charts' defaults."""

from __future__ import annotations

import json

import pytest
import yaml

from fedsilo_testing.cluster import API_SERVICE_IP, FEDSILO_NAMESPACES, TEST_TIMEOUT_S, Cluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(TEST_TIMEOUT_S)]

IMAGE = "ghcr.io/fedsilo/fedsilo:0.1.0"


def _pod(name: str, namespace: str, command: list[str], **container: object) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "main", "image": IMAGE, "imagePullPolicy": "Never", "command": command, **container}
                ],
            },
        }
    )


def test_a_pod_runs_and_resolves_cluster_names(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", "cluster-smoke", check=False)
    cluster.kubectl("delete", "pod", "smoke", "-n", "cluster-smoke", "--ignore-not-found", "--wait=true")
    probe = "import json, socket; print(json.dumps(socket.gethostbyname('kubernetes.default.svc.cluster.local')))"
    cluster.apply(_pod("smoke", "cluster-smoke", ["python", "-c", probe]))
    phase = cluster.wait_for(
        "the smoke pod to finish",
        lambda: (
            cluster.get("pod", "smoke", "-n", "cluster-smoke")["status"].get("phase") in ("Succeeded", "Failed")
            and cluster.get("pod", "smoke", "-n", "cluster-smoke")["status"]["phase"]
        ),
        timeout=300,
        diagnose=("cluster-smoke",),
    )
    logs = cluster.kubectl("logs", "smoke", "-n", "cluster-smoke").stdout
    assert phase == "Succeeded", logs
    # CoreDNS answered with the API server's Service address.
    assert json.loads(logs.strip().splitlines()[-1]) == API_SERVICE_IP


@pytest.mark.parametrize("namespace", FEDSILO_NAMESPACES)
def test_restricted_is_enforced_by_admission(fedsilo: Cluster, namespace: str) -> None:
    # A root pod with privilege escalation allowed: what "restricted" refuses.
    offending = _pod("not-restricted", namespace, ["true"], securityContext={"runAsUser": 0})
    refused = fedsilo.kubectl("apply", "--dry-run=server", "-f", "-", input=offending, check=False)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr, refused.stderr


@pytest.mark.parametrize("namespace", FEDSILO_NAMESPACES)
def test_fedsilo_pods_pass_restricted(fedsilo: Cluster, namespace: str) -> None:
    # The namespace enforces restricted, so every pod in it was admitted under it; check the
    # label is what admission read, and the charts' pods are there and running.
    labels = fedsilo.get("namespace", namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = fedsilo.get("pods", "-n", namespace)["items"]
    for pod in pods:
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True, pod["metadata"]["name"]
        for container in pod["spec"]["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
