"""NetworkPolicies enforced, not assumed: connections tried from inside the pods of a running
job. Each refusal is paired with a control that shows the same destination answers a pod
that no policy fences, so a failure is the policy's doing, not a missing route."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from fedsilo.operator._config import AGGREGATOR_METRICS_PORT, GRPC_PORT, TRAINER_LINK_PORT
from fedsilo.operator._hub_objects import AGGREGATOR
from fedsilo.operator._names import COMPONENT_LABEL, JOB_LABEL, SILO_LABEL
from fedsilo.operator._silo_objects import SIDECAR, TRAINER
from fedsilo_testing.cluster import (
    API_SERVICE_IP,
    CLUSTER,
    JOB_NAMESPACE,
    NODE_IP,
    SILOS,
    TEST_TIMEOUT_S,
    Cluster,
    apply_quickstart,
    delete_job,
    job_manifest,
    job_status,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(TEST_TIMEOUT_S)]

JOB = "fenced"
#: A TCP listener on the node, outside every pod: "outside the cluster" for a pod.
OUTSIDE_PORT = 18080
#: A namespace with no NetworkPolicy: where the control probes run.
OPEN_NAMESPACE = "cluster-open"
PROBE_IMAGE = "ghcr.io/fedsilo/fedsilo:0.1.0"


@dataclass(frozen=True)
class Addresses:
    """Where a running job's parts are."""

    aggregator_pod: str
    aggregator_service: str
    sidecar_service: dict[str, str]
    sidecar_pod: dict[str, str]
    trainer_pod_name: dict[str, str]
    sidecar_pod_name: dict[str, str]


def _one(cluster: Cluster, namespace: str, **labels: str) -> dict[str, Any]:
    selector = ",".join(f"{key}={value}" for key, value in labels.items())
    items: list[dict[str, Any]] = cluster.get("pods", "-n", namespace, "-l", selector)["items"]
    assert len(items) == 1, (namespace, selector, [item["metadata"]["name"] for item in items])
    return items[0]


def _probe_pod(cluster: Cluster, namespace: str, name: str) -> str:
    """A long-running restricted pod of the fedsilo image that is nobody's sidecar."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "probe"}},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "probe",
                    "image": PROBE_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", "import time; time.sleep(3600)"],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "readOnlyRootFilesystem": True,
                    },
                }
            ],
        },
    }
    cluster.apply(yaml.safe_dump(manifest))
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "-n", namespace, "--timeout=300s", timeout=360)
    return name


@pytest.fixture(scope="module")
def outside() -> Iterator[None]:
    """A TCP server on the node's address in the cluster's namespace, not in any pod."""
    server = subprocess.Popen(
        [
            "bash", str(CLUSTER), "exec", "python3", "-c",
            "import socketserver as s\n"
            "class H(s.BaseRequestHandler):\n    def handle(self): self.request.sendall(b'hi')\n"
            f"s.TCPServer(({NODE_IP!r}, {OUTSIDE_PORT}), H).serve_forever()",
        ],
    )  # fmt: skip
    try:
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def running(fedsilo: Cluster, outside: None) -> Iterator[Addresses]:
    """A job that outlasts the probes however fast the machine, its pods Running; deleted afterwards.

    Deleted, not run to its end, so its length costs nothing: on a quiet machine 200 rounds of
    one second's training ended during the probes, and an ended job's pods cannot be probed.
    """
    delete_job(fedsilo, JOB)
    training = {**job_manifest(JOB, rounds=1)["spec"]["training"], "localEpochs": 12}
    apply_quickstart(fedsilo, job_manifest(JOB, rounds=5000, training=training))
    fedsilo.wait_for(
        f"job {JOB} to complete a round",
        lambda: (job_status(fedsilo, JOB).get("round") or 0) >= 1,
        timeout=600,
        diagnose=(JOB_NAMESPACE, *SILOS),
    )
    aggregator = _one(fedsilo, JOB_NAMESPACE, **{JOB_LABEL: JOB, COMPONENT_LABEL: AGGREGATOR})
    service = next(
        item
        for item in fedsilo.get("services", "-n", JOB_NAMESPACE, "-l", f"{JOB_LABEL}={JOB}")["items"]
        if any(port["port"] == GRPC_PORT for port in item["spec"]["ports"])
    )
    sidecars = {
        silo: _one(fedsilo, silo, **{JOB_LABEL: JOB, SILO_LABEL: silo, COMPONENT_LABEL: SIDECAR}) for silo in SILOS
    }
    trainers = {
        silo: _one(fedsilo, silo, **{JOB_LABEL: JOB, SILO_LABEL: silo, COMPONENT_LABEL: TRAINER}) for silo in SILOS
    }
    sidecar_services = {
        silo: fedsilo.get("services", "-n", silo, "-l", f"{JOB_LABEL}={JOB},{COMPONENT_LABEL}={SIDECAR}")["items"][0]
        for silo in SILOS
    }
    yield Addresses(
        aggregator_pod=aggregator["status"]["podIP"],
        aggregator_service=service["spec"]["clusterIP"],
        sidecar_service={silo: svc["spec"]["clusterIP"] for silo, svc in sidecar_services.items()},
        sidecar_pod={silo: pod["status"]["podIP"] for silo, pod in sidecars.items()},
        trainer_pod_name={silo: pod["metadata"]["name"] for silo, pod in trainers.items()},
        sidecar_pod_name={silo: pod["metadata"]["name"] for silo, pod in sidecars.items()},
    )
    delete_job(fedsilo, JOB)


@pytest.fixture(scope="module")
def open_probe(fedsilo: Cluster) -> str:
    fedsilo.kubectl("create", "namespace", OPEN_NAMESPACE, check=False)
    return _probe_pod(fedsilo, OPEN_NAMESPACE, "probe")


def test_the_controls_connect(fedsilo: Cluster, running: Addresses, open_probe: str) -> None:
    # From a pod no policy fences: the outside listener, the API server and a sidecar answer.
    assert fedsilo.can_connect(OPEN_NAMESPACE, open_probe, NODE_IP, OUTSIDE_PORT)
    assert fedsilo.can_connect(OPEN_NAMESPACE, open_probe, API_SERVICE_IP, 443)
    assert fedsilo.can_connect(OPEN_NAMESPACE, open_probe, NODE_IP, 6443)


def test_a_trainer_reaches_only_its_own_sidecar(fedsilo: Cluster, running: Addresses) -> None:
    silo, other = SILOS[0], SILOS[1]
    trainer = running.trainer_pod_name[silo]

    def reach(host: str, port: int) -> bool:
        return fedsilo.can_connect(silo, trainer, host, port)

    assert reach(running.sidecar_service[silo], TRAINER_LINK_PORT)
    assert not reach(running.aggregator_service, GRPC_PORT)
    assert not reach(running.aggregator_pod, GRPC_PORT)
    assert not reach(running.sidecar_service[other], TRAINER_LINK_PORT)
    assert not reach(running.sidecar_pod[other], TRAINER_LINK_PORT)
    assert not reach(API_SERVICE_IP, 443)
    assert not reach(NODE_IP, 6443)
    assert not reach(NODE_IP, OUTSIDE_PORT)


def test_a_sidecar_reaches_only_the_aggregator_and_dns(fedsilo: Cluster, running: Addresses) -> None:
    silo, other = SILOS[0], SILOS[1]
    sidecar = running.sidecar_pod_name[silo]

    def reach(host: str, port: int) -> bool:
        return fedsilo.can_connect(silo, sidecar, host, port)

    assert reach(running.aggregator_service, GRPC_PORT)
    assert reach("10.96.0.10", 53)  # DNS over TCP
    assert not reach(API_SERVICE_IP, 443)
    assert not reach(NODE_IP, OUTSIDE_PORT)
    assert not reach(running.sidecar_pod[other], TRAINER_LINK_PORT)
    # The aggregator's other ports (its metrics) are not the sidecar's business.
    assert not reach(running.aggregator_pod, AGGREGATOR_METRICS_PORT)


def test_a_pod_in_a_silo_namespace_that_is_no_sidecar_cannot_reach_the_aggregator(
    fedsilo: Cluster, running: Addresses
) -> None:
    # The silo chart's default-deny fences every other pod of the namespace.
    probe = _probe_pod(fedsilo, SILOS[0], "not-a-sidecar")
    try:
        assert not fedsilo.can_connect(SILOS[0], probe, running.aggregator_service, GRPC_PORT)
        assert not fedsilo.can_connect(SILOS[0], probe, running.aggregator_pod, GRPC_PORT)
    finally:
        fedsilo.kubectl("delete", "pod", probe, "-n", SILOS[0], "--wait=false")


def test_an_unfenced_pod_elsewhere_cannot_reach_the_aggregator(
    fedsilo: Cluster, running: Addresses, open_probe: str
) -> None:
    assert not fedsilo.can_connect(OPEN_NAMESPACE, open_probe, running.aggregator_service, GRPC_PORT)
