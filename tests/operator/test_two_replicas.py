"""Two replicas of the operator are safe: through kopf peering one works and one stands by,
and the one standing by takes over when the other stops.

Each replica builds with an image name of its own, so the aggregator Deployment tells which
replica last applied it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from fedsilo.kube import KubeApi, load_access
from fedsilo.operator import OperatorConfig, OperatorRole, build_registry, operator_settings
from fedsilo_testing import ControlPlane

from .conftest import EXAMPLES, ROOT, apply_file, apply_objects, children, get, unique, wait_for

pytestmark = pytest.mark.integration

PEERING = "fedsilo-both"


@contextmanager
def replica(namespace: str, kubeconfig: Path, priority: int, image: str) -> Iterator[KopfRunner]:
    config = OperatorConfig(namespaces=frozenset([namespace]), image=image, trainer_image=image)
    registry = build_registry(OperatorRole.BOTH, config, load_access(kubeconfig))
    args = ["run", "--peering", PEERING, "--priority", str(priority), "-n", namespace]
    with KopfRunner(args, registry=registry, settings=operator_settings(OperatorRole.BOTH), timeout=60) as runner:
        yield runner


def aggregator_image(admin: KubeApi, namespace: str, job: str = "quickstart") -> str | None:
    deployment = children(admin, namespace).get(("Deployment", f"{job}-aggregator"))
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"] if deployment else None


def peers(cluster: ControlPlane, namespace: str) -> int:
    status = cluster.kubectl("get", "kopfpeering", PEERING, "-n", namespace, "-o", "jsonpath={.status}").stdout
    return status.count('"priority"')


def test_one_replica_works_and_the_other_takes_over_when_it_stops(cluster: ControlPlane, admin: KubeApi) -> None:
    cluster.kubectl("apply", "-f", str(ROOT / "crds" / "kopf.dev_peerings.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=60s")
    namespace = cluster.create_namespace(unique("replicas"))
    peering = {
        "apiVersion": "kopf.dev/v1",
        "kind": "KopfPeering",
        "metadata": {"name": PEERING, "namespace": namespace},
    }
    cluster.apply(peering)

    def edit(rounds: int) -> None:
        patch = f'{{"spec":{{"rounds":{rounds}}}}}'
        cluster.kubectl("patch", "-n", namespace, "federatedjob", "quickstart", "--type=merge", "-p", patch)
        wait_for(
            lambda: (
                f"rounds: {rounds}" in children(admin, namespace)[("ConfigMap", "quickstart-job")]["data"]["job.yaml"]
            ),
            f"a replica applied rounds: {rounds}; job: {cluster.kubectl('get', '-n', namespace, 'fj', 'quickstart', '-o', 'jsonpath={.metadata.annotations}').stdout}",
            timeout=60,
        )

    with replica(namespace, cluster.kubeconfig, priority=100, image="example.com/standby:1"):
        with replica(namespace, cluster.kubeconfig, priority=200, image="example.com/leader:1"):
            wait_for(lambda: peers(cluster, namespace) == 2, "both replicas in the peering object")
            apply_file(cluster, namespace, EXAMPLES / "quickstart.yaml")
            wait_for(lambda: aggregator_image(admin, namespace), "the aggregator Deployment")
            edit(16)
            time.sleep(2.0)  # a working standby would re-apply its own image by now
            assert aggregator_image(admin, namespace) == "example.com/leader:1", "only the leader works"
        # The leader stopped and left the peering: the standby resumes and serves the next job.
        wait_for(lambda: peers(cluster, namespace) == 1, "the leader left the peering object")
        job = get(cluster, namespace, "federatedjob", "quickstart")
        second = {
            "apiVersion": job["apiVersion"],
            "kind": job["kind"],
            "metadata": {"name": "second", "namespace": namespace},
            "spec": job["spec"],
        }
        apply_objects(cluster, namespace, second)
        image = wait_for(lambda: aggregator_image(admin, namespace, "second"), "the standby builds a new job")
        assert image == "example.com/standby:1", "the standby took over"
