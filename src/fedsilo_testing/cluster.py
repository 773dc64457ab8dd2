"""The real single-node cluster of ``scripts/cluster``, for the tests whose pods must run.

The cluster lives in a network namespace of its own (``fedsilo-cluster``): every client
command (kubectl, helm, a probe) runs in it through ``scripts/cluster exec``. The session
brings it up once (minutes cold: tools, images, import; seconds when it is already up) and
takes it down at the end only if it started it, unless FEDSILO_KEEP_CLUSTER=1 keeps it for
the next run.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "scripts" / "cluster"
BUILD_IMAGES = ROOT / "scripts" / "build-images"

#: The address of the node inside the namespace (scripts/cluster's node_ip): "outside the
#: cluster" from a pod's point of view, where a test can listen without a pod.
NODE_IP = "10.200.0.1"
#: The API server's Service address (first address of the service range).
API_SERVICE_IP = "10.96.0.1"


#: pytest-timeout for a cluster test: its fixtures install charts and run a whole job in pods,
#: minutes on a busy 2-core node (the suite's default of 600 s is for one test's own work).
TEST_TIMEOUT_S = 2400


#: kubectl's words when the API server did not answer in time (TLS handshake or connection).
UNREACHABLE = "Unable to connect to the server"


class ClusterCommandFailed(RuntimeError):
    """A command in the cluster exited non-zero; the message carries its output."""


@dataclass(frozen=True)
class Cluster:
    """Runs commands inside the cluster's namespaces, with its admin kubeconfig."""

    kubeconfig: Path

    def run(
        self, *argv: str, input: str | None = None, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` inside the cluster's network namespace; raise with its output if it fails."""
        result = subprocess.run(
            ["bash", str(CLUSTER), "exec", *argv], input=input, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise ClusterCommandFailed(
                f"{' '.join(argv)} exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """The pinned kubectl (scripts/cluster links it into the cluster's PATH)."""
        return self.run("kubectl", *args, **kwargs)

    def get(self, *args: str) -> Any:
        """``kubectl get ARGS -o json``, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def helm(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """The pinned helm, built on demand."""
        from fedsilo_testing.tools import tool_path

        return self.run(str(tool_path("helm")), *args, **kwargs)

    def apply(self, manifest: str, *args: str) -> None:
        """Server-side apply of a YAML document stream."""
        self.kubectl("apply", "--server-side", "-f", "-", *args, input=manifest)

    def can_connect(self, namespace: str, pod: str, host: str, port: int, container: str | None = None) -> bool:
        """Whether a TCP connection from inside ``pod`` to ``host:port`` succeeds (3 s to try).

        The probe is Python in the pod's own image (every fedsilo image has it), so it runs
        with the pod's own network identity and policies.
        """
        probe = (
            "import socket, sys\n"
            "try:\n"
            f"    socket.create_connection(({host!r}, {port}), timeout=3).close()\n"
            "except OSError as error:\n"
            "    print(error); sys.exit(7)\n"
        )
        where = ["-c", container] if container else []
        result = self.kubectl("exec", "-n", namespace, pod, *where, "--", "python", "-c", probe, check=False)
        if result.returncode not in (0, 7):
            raise ClusterCommandFailed(f"the probe in {namespace}/{pod} could not run: {result.stderr}")
        return result.returncode == 0

    def wait_for(
        self, what: str, condition: Any, timeout: float = 600, interval: float = 2.0, diagnose: Sequence[str] = ()
    ) -> Any:
        """Poll ``condition()`` until it returns something truthy; fail naming ``what`` after ``timeout``.

        ``diagnose`` names namespaces whose pods and events are printed on a timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
            except ClusterCommandFailed as error:
                # An API server that a busy node leaves unanswered for a moment is no answer yet;
                # any other failure of the condition's command is the test's to see.
                if UNREACHABLE not in str(error):
                    raise
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                details = "".join(
                    self.kubectl("get", "pods,events", "-n", namespace, "-o", "wide", check=False).stdout
                    for namespace in diagnose
                )
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{details}")
            time.sleep(interval)


def _cluster_command(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(CLUSTER), *args], capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def start_cluster() -> Iterator[Cluster]:
    """Bring the cluster up (if it is not), yield it, take it down if this call started it."""
    was_up = _cluster_command("status", timeout=120).returncode == 0
    if not was_up:
        # Cold: builds the tools and images first (tens of minutes on a fresh machine).
        started = _cluster_command("up", timeout=3600)
        if started.returncode != 0:
            logs = Path(os.environ.get("FEDSILO_CACHE", Path.home() / ".cache" / "fedsilo")) / "cluster" / "logs"
            raise RuntimeError(f"scripts/cluster up failed (logs in {logs}):\n{started.stderr[-4000:]}")
    kubeconfig = Path(_cluster_command("kubeconfig", timeout=60).stdout.strip())
    try:
        yield Cluster(kubeconfig)
    finally:
        if not was_up and os.environ.get("FEDSILO_KEEP_CLUSTER") != "1":
            _cluster_command("down", timeout=600)


def cluster_session() -> Iterator[Cluster]:
    """The pytest side of :func:`start_cluster`: skipped where it cannot run (not root)."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("the real cluster needs Linux and root (network and mount namespaces, cgroups)")
    with start_cluster() as cluster:
        yield cluster


# The layout of the cluster tests and benchmark, as the install guides describe one cluster
# playing the hub and three partners: the hub chart (role hub) in ``fedsilo-system`` watching
# ``fedsilo-hub`` (jobs, Silos, aggregators); one fedsilo-silo release per partner, each in
# the partner's namespace (``hospital-a`` ...), which holds its operator, identity, trainer
# and sidecar pods, with its Silo in ``fedsilo-hub``. Every namespace enforces Pod Security
# "restricted".
HUB_RELEASE_NAMESPACE = "fedsilo-system"
JOB_NAMESPACE = "fedsilo-hub"
SILOS = ("hospital-a", "hospital-b", "hospital-c")
#: Every namespace fedsilo uses in this layout.
FEDSILO_NAMESPACES = (HUB_RELEASE_NAMESPACE, JOB_NAMESPACE, *SILOS)
#: The OPA image scripts/build-images makes from the pinned binary (no registry to pull from).
OPA_IMAGE = ("localhost/fedsilo/opa", "v1.22.2")


def _namespace(name: str) -> str:
    metadata: dict[str, Any] = {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}
    if name in SILOS:
        # The partner's consent to its Silo's pods running here, and the label that lets its
        # sidecars through to the hub's aggregators (docs/partner-onboarding.md).
        metadata["annotations"] = {"fedsilo.io/accept-silos": f"{JOB_NAMESPACE}/{name}"}
        metadata["labels"]["fedsilo.io/silo-namespace"] = "true"
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})


def quickstart() -> list[dict[str, Any]]:
    """examples/quickstart.yaml's documents: the FederatedJob first, then its Silos."""
    return [doc for doc in yaml.safe_load_all((ROOT / "examples" / "quickstart.yaml").read_text()) if doc]


def install_fedsilo(cluster: Cluster) -> Cluster:
    """Install fedsilo with its charts, as the guides do (upgraded in place if it is there)."""
    for name in FEDSILO_NAMESPACES:
        cluster.apply(_namespace(name))
    opa_repository, opa_tag = OPA_IMAGE
    cluster.helm(
        "upgrade", "--install", "fedsilo", str(ROOT / "charts" / "fedsilo"), "--namespace", HUB_RELEASE_NAMESPACE,
        "--set", "role=hub", "--set", f"namespaces={{{JOB_NAMESPACE}}}",
        "--set", f"opaImage.repository={opa_repository}", "--set", f"opaImage.tag={opa_tag}",
        "--wait", "--timeout", "10m",
        timeout=900,
    )  # fmt: skip
    silos = {doc["metadata"]["name"]: doc for doc in quickstart() if doc["kind"] == "Silo"}
    for silo in SILOS:
        cluster.helm(
            "upgrade", "--install", f"fedsilo-{silo}", str(ROOT / "charts" / "fedsilo-silo"), "--namespace", silo,
            "--skip-crds", "--set", f"silo.name={silo}", "--set", f"silo.namespace={JOB_NAMESPACE}",
            "--set", f"silo.displayName={silos[silo]['spec']['displayName']}", "--set", f"workloadNamespace={silo}",
            "--wait", "--timeout", "10m",
            timeout=900,
        )  # fmt: skip
    return cluster


#: The trainers' share of the single node: its 2 cores cannot hold the default requests (500m
#: per trainer) beside the operators, the aggregator and the sidecars.
TRAINER_RESOURCES = {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "4Gi"}}


#: How long a job's aggregator waits for the silos' pods on the shared 2-core node.
JOIN_TIMEOUT_S = 900


def job_manifest(name: str, rounds: int, **spec: Any) -> dict[str, Any]:
    """The quickstart FederatedJob under another name, with fewer rounds (and spec overrides)."""
    job = copy.deepcopy(next(doc for doc in quickstart() if doc["kind"] == "FederatedJob"))
    job["metadata"] = {"name": name, "namespace": JOB_NAMESPACE}
    job["spec"]["rounds"] = rounds
    job["spec"].setdefault("resources", {})["trainer"] = TRAINER_RESOURCES
    # The silos' pods start one after another on the one node (each trainer loads PyTorch).
    job["spec"]["joinTimeoutSeconds"] = JOIN_TIMEOUT_S
    job["spec"].update(spec)
    return job


def apply_quickstart(cluster: Cluster, job: dict[str, Any]) -> None:
    """Server-side apply of ``job`` and the quickstart's Silos (which the silo charts also own)."""
    silos = [
        {**doc, "metadata": {**doc["metadata"], "namespace": JOB_NAMESPACE}}
        for doc in quickstart()
        if doc["kind"] == "Silo"
    ]
    cluster.apply(yaml.safe_dump_all([job, *silos]), "--force-conflicts")


def job_status(cluster: Cluster, name: str) -> dict[str, Any]:
    """The FederatedJob's status ({} before the operator wrote one)."""
    status: dict[str, Any] = cluster.get("federatedjob", name, "-n", JOB_NAMESPACE).get("status") or {}
    return status


def wait_finished(cluster: Cluster, name: str, timeout: float = 900) -> dict[str, Any]:
    """Wait for the job's phase to be Succeeded or Failed; return its status."""

    def finished() -> dict[str, Any] | None:
        status = job_status(cluster, name)
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    result: dict[str, Any] = cluster.wait_for(
        f"job {name} to finish", finished, timeout=timeout, interval=3, diagnose=(JOB_NAMESPACE, *SILOS)
    )
    return result


def delete_job(cluster: Cluster, name: str) -> None:
    """Delete a job and wait for its pods to go (the next test starts from a quiet cluster)."""
    cluster.kubectl("delete", "federatedjob", name, "-n", JOB_NAMESPACE, "--ignore-not-found", "--wait=true")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        pods = [
            pod
            for namespace in (JOB_NAMESPACE, *SILOS)
            for pod in cluster.get("pods", "-n", namespace, "-l", f"fedsilo.io/job={name}")["items"]
        ]
        if not pods:
            return
        time.sleep(2)


def aggregator_state_dir(cluster: Cluster, job: str) -> tuple[Path, str]:
    """Where the job's aggregator state volume is on the node, and where its pod mounts it.

    The volumes are node-local (scripts/cluster's pool), so a test reads what the aggregator
    wrote (registry, audit log, checkpoints) straight from the node.
    """
    deployment = cluster.get("deployments", "-n", JOB_NAMESPACE, "-l", f"fedsilo.io/job={job}")["items"][0]
    pod_spec = deployment["spec"]["template"]["spec"]
    claim_volume = next(volume for volume in pod_spec["volumes"] if "persistentVolumeClaim" in volume)
    mount = next(
        mount
        for container in pod_spec["containers"]
        for mount in container.get("volumeMounts", [])
        if mount["name"] == claim_volume["name"]
    )
    return claim_dir(cluster, JOB_NAMESPACE, claim_volume["persistentVolumeClaim"]["claimName"]), str(
        mount["mountPath"]
    )


def claim_dir(cluster: Cluster, namespace: str, claim_name: str) -> Path:
    """Where a bound PersistentVolumeClaim's volume is on the node (scripts/cluster's pool is node-local)."""
    claim = cluster.get("pvc", claim_name, "-n", namespace)
    volume = cluster.get("pv", claim["spec"]["volumeName"])
    return Path(volume["spec"]["hostPath"]["path"])
