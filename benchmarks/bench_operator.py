"""Operator latency and fan-in: from ``kubectl apply`` to children and Ready, one job and 100 at once.

    .venv/bin/python benchmarks/bench_operator.py [--repeats 5] [--jobs 100] [--silos-per-job 3]

A real etcd + kube-apiserver (the pinned builds, as the tests start them) and the operator
as ``fedsilo operator --role both`` runs it: ``run_operator`` in its own process, standalone,
serving its Prometheus metrics. The control plane has no controller-manager, so a stand-in
Deployment controller in this process marks each aggregator Deployment available as soon
as it appears (polling every 50 ms), the one fact the operator's Ready condition reads.

1. Warm-up: one small job, created and deleted.
2. A 10-silo FederatedJob and its 10 Silos in one ``kubectl apply``: time until every child
   (hub: 9 objects; per silo: 6, and its identity Secret and ConfigMap) exists, and until the job's Ready condition is True.
   Goal: Ready within 2 s.
3. ``--jobs`` jobs with their silos in one ``kubectl apply``: time until all are Ready, and
   the operator's reconciles by outcome from its metrics, per job: a retry storm would show
   as many "waiting" or "error" reconciles per job.

Wall times depend on what else the machine runs (the API server, etcd and the operator
share its cores); ``operator_cpu_s`` is the operator's own CPU time, which does not.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from _harness import print_figures

from fedsilo.kube import (
    CONFIG_MAP,
    DEPLOYMENT,
    FEDERATED_JOB,
    NETWORK_POLICY,
    POD,
    ROLE,
    ROLE_BINDING,
    SECRET,
    SERVICE,
    SERVICE_ACCOUNT,
    KubeApi,
    load_access,
)
from fedsilo_testing import ControlPlane, free_port, install_crds

MANAGED = {"app.kubernetes.io/managed-by": "fedsilo-operator"}
KINDS = (CONFIG_MAP, SECRET, SERVICE, SERVICE_ACCOUNT, POD, DEPLOYMENT, NETWORK_POLICY, ROLE, ROLE_BINDING)
#: Objects labelled with their job: 9 on the hub, 6 per silo (the identity is the silo's, not the job's).
HUB_OBJECTS = 9
JOB_OBJECTS_PER_SILO = 6


def manifests(job: str, silos: int) -> list[dict[str, Any]]:
    names = [f"{job}-s{i:02d}" for i in range(silos)]
    documents: list[dict[str, Any]] = [
        {"apiVersion": "fedsilo.io/v1alpha1", "kind": "Silo", "metadata": {"name": name}, "spec": {}} for name in names
    ]
    documents.append(
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "FederatedJob",
            "metadata": {"name": job},
            "spec": {"silos": names, "minSilos": 2, "model": {"builtin": "mlp"}},
        }
    )
    return documents


class DeploymentController(threading.Thread):
    """Marks every aggregator Deployment available: kube-controller-manager and a kubelet, in one line."""

    def __init__(self, api: KubeApi, namespace: str) -> None:
        super().__init__(daemon=True)
        self.api, self.namespace = api, namespace
        self.stopped = threading.Event()

    def run(self) -> None:
        selector = {"app.kubernetes.io/component": "aggregator", **MANAGED}
        while not self.stopped.wait(0.05):
            for deployment in self.api.list(DEPLOYMENT, self.namespace, selector):
                if (deployment.get("status") or {}).get("availableReplicas"):
                    continue
                status = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1}
                meta = {"name": deployment["metadata"]["name"], "namespace": self.namespace}
                self.api.apply(
                    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "status": status},
                    subresource="status",
                )


def count_children(api: KubeApi, namespace: str, job: str | None = None) -> int:
    selector = dict(MANAGED) | ({"fedsilo.io/job": job} if job else {})
    return sum(len(api.list(kind, namespace, selector)) for kind in KINDS)


def ready_jobs(api: KubeApi, namespace: str) -> int:
    ready = 0
    for job in api.list(FEDERATED_JOB, namespace, {}):
        conditions = (job.get("status") or {}).get("conditions") or []
        ready += any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return ready


def apply(plane: ControlPlane, namespace: str, documents: list[dict[str, Any]]) -> None:
    plane.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(documents), timeout=600)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process: what the operator costs, whatever else loads the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reconcile_counts(metrics_url: str) -> dict[str, float]:
    """Reconciles by outcome, summed over handlers, from the operator's /metrics."""
    counts: dict[str, float] = {}
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("fedsilo_operator_reconciles_total{"):
                labels, value = line.rsplit(" ", 1)
                outcome = labels.split('outcome="', 1)[1].split('"', 1)[0]
                counts[outcome] = counts.get(outcome, 0.0) + float(value)
    return counts


def one_job(plane: ControlPlane, api: KubeApi, namespace: str, job: str, silos: int) -> tuple[float, float]:
    """Seconds from apply to all children, and to Ready."""
    expected = HUB_OBJECTS + JOB_OBJECTS_PER_SILO * silos
    started = time.perf_counter()
    apply(plane, namespace, manifests(job, silos))
    children_at = ready_at = 0.0
    while not ready_at:
        now = time.perf_counter() - started
        if not children_at and count_children(api, namespace, job) >= expected:
            children_at = now
        if children_at and ready_jobs(api, namespace) >= 1:
            ready_at = time.perf_counter() - started
        if now > 120:
            raise SystemExit(f"{job} not Ready after 120 s")
        time.sleep(0.01)
    return children_at, ready_at


def delete_all(plane: ControlPlane, namespace: str) -> None:
    plane.kubectl("delete", "-n", namespace, "federatedjobs,silos", "--all", "--timeout=600s", timeout=660)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="10-silo jobs to time one after another")
    parser.add_argument("--jobs", type=int, default=100, help="jobs applied at once")
    parser.add_argument("--silos-per-job", type=int, default=3)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="fedsilo-bench-operator-") as work,
        # A Service per aggregator and per sidecar: the test plane's /24 holds only 254 of them.
        ControlPlane(Path(work) / "plane", extra_apiserver_args=["--service-cluster-ip-range=10.0.0.0/16"]) as plane,
    ):
        install_crds(plane)
        single, fleet = plane.create_namespace("single"), plane.create_namespace("fleet")
        api = KubeApi(load_access(plane.kubeconfig), "bench")
        port = free_port()
        log = Path(work) / "operator.log"
        operator = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from fedsilo.operator import run_operator; "
                "run_operator('both', sys.argv[1:3], kubeconfig=Path(sys.argv[3]), metrics_port=int(sys.argv[4]), "
                "liveness_port=None, peering=False)",
                single,
                fleet,
                str(plane.kubeconfig),
                str(port),
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        controllers = [DeploymentController(api, single), DeploymentController(api, fleet)]
        for controller in controllers:
            controller.start()
        try:
            metrics = f"http://127.0.0.1:{port}/metrics"
            one_job(plane, api, single, "warmup", 2)
            delete_all(plane, single)

            rows = []
            for repeat in range(args.repeats):
                cpu = cpu_seconds(operator.pid)
                children_s, ready_s = one_job(plane, api, single, f"ten-{repeat}", 10)
                cpu = cpu_seconds(operator.pid) - cpu
                rows.append(
                    {"run": repeat, "silos": 10, "children_s": children_s, "ready_s": ready_s, "operator_cpu_s": cpu}
                )
                delete_all(plane, single)
            keys = ("children_s", "ready_s", "operator_cpu_s")
            median = {key: statistics.median(row[key] for row in rows) for key in keys}
            rows.append({"run": "median", "silos": 10, **median})
            print_figures("operator: kubectl apply of a 10-silo job to children and Ready (goal: Ready <= 2 s)", rows)

            before, cpu = reconcile_counts(metrics), cpu_seconds(operator.pid)
            documents = [d for i in range(args.jobs) for d in manifests(f"job-{i:03d}", args.silos_per_job)]
            started = time.perf_counter()
            apply(plane, fleet, documents)
            applied = time.perf_counter() - started
            while ready_jobs(api, fleet) < args.jobs:
                if time.perf_counter() - started > 900:
                    raise SystemExit("the fleet was not Ready after 900 s")
                time.sleep(0.25)
            all_ready = time.perf_counter() - started
            after, cpu = reconcile_counts(metrics), cpu_seconds(operator.pid) - cpu
            delta = {
                outcome: after.get(outcome, 0.0) - before.get(outcome, 0.0)
                for outcome in ("ok", "waiting", "invalid", "error")
            }
            print_figures(
                f"operator: {args.jobs} jobs x {args.silos_per_job} silos in one kubectl apply",
                [
                    {
                        "jobs": args.jobs,
                        "objects": count_children(api, fleet),
                        "kubectl_apply_s": applied,
                        "all_ready_s": all_ready,
                        "operator_cpu_s": cpu,
                        "reconciles_ok": int(delta["ok"]),
                        "waiting": int(delta["waiting"]),
                        "invalid": int(delta["invalid"]),
                        "errors": int(delta["error"]),
                        "reconciles_per_job": (sum(delta.values())) / args.jobs,
                    }
                ],
            )
        finally:
            for controller in controllers:
                controller.stopped.set()
            operator.terminate()
            operator.wait(30)


if __name__ == "__main__":
    main()
