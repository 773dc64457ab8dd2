"""The cost of the cluster path: the quickstart's 3-silo job on the real cluster against the
same job run locally.

    sudo .venv/bin/python benchmarks/bench_cluster.py [--repeats 3] [--rounds 5]

The cluster is scripts/cluster's single node (brought up if it is not; left as found), with
fedsilo installed from its charts as the cluster tests do (fedsilo_testing.cluster) and the
images already imported ("warm": no image is built or imported during a measurement).

For each repeat, one ``kubectl apply`` of the FederatedJob and its three Silos, then:
  to_running_s     until every pod of the job (the aggregator, 3 sidecars, 3 trainers) is Running
  to_succeeded_s   until the job's phase is Succeeded
then the job is deleted and its pods awaited before the next repeat. The local figure is the
wall time of ``fedsilo run`` of the same manifest (the same rounds; no centralized baseline).
Medians of ``--repeats``; ``ratio`` is the cluster's median over the local one.

Both paths share this machine's cores with whatever else it runs: compare the ratio, not the
seconds, across machines.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _harness import print_figures

from fedsilo.operator._names import JOB_LABEL
from fedsilo_testing.cluster import (
    JOB_NAMESPACE,
    SILOS,
    Cluster,
    apply_quickstart,
    delete_job,
    install_fedsilo,
    job_manifest,
    job_status,
    quickstart,
    start_cluster,
)

POLL_S = 0.5
FEDSILO = str(Path(sys.executable).parent / "fedsilo")


def job_pods_running(cluster: Cluster, job: str) -> bool:
    """Whether the aggregator and every silo's sidecar and trainer are Running."""
    phases = [
        pod["status"].get("phase")
        for namespace in (JOB_NAMESPACE, *SILOS)
        for pod in cluster.get("pods", "-n", namespace, "-l", f"{JOB_LABEL}={job}")["items"]
    ]
    return len(phases) == 1 + 2 * len(SILOS) and all(phase == "Running" for phase in phases)


def cluster_run(cluster: Cluster, name: str, rounds: int) -> tuple[float, float]:
    """Seconds from ``kubectl apply`` to every pod Running, and to Succeeded."""
    delete_job(cluster, name)
    job = job_manifest(name, rounds)
    started = time.perf_counter()
    apply_quickstart(cluster, job)
    running = succeeded = 0.0
    while True:
        now = time.perf_counter() - started
        if now > 1800:
            raise SystemExit(f"job {name} did not succeed in 1800 s: {job_status(cluster, name)}")
        if not running and job_pods_running(cluster, name):
            running = time.perf_counter() - started
        phase = job_status(cluster, name).get("phase")
        if phase == "Failed":
            raise SystemExit(f"job {name} failed: {job_status(cluster, name)}")
        if phase == "Succeeded":
            succeeded = time.perf_counter() - started
            break
        time.sleep(POLL_S)
    delete_job(cluster, name)
    # A job shorter than the poll could finish before all pods were seen Running together.
    return running or succeeded, succeeded


def local_run(rounds: int) -> float:
    """Wall seconds of ``fedsilo run`` of the same job, as a user runs it."""
    documents: list[dict[str, Any]] = quickstart()
    documents[0] = {**documents[0], "spec": {**documents[0]["spec"], "rounds": rounds}}
    with tempfile.TemporaryDirectory() as folder:
        manifest = Path(folder) / "job.yaml"
        manifest.write_text(yaml.safe_dump_all(documents))
        started = time.perf_counter()
        subprocess.run(
            [FEDSILO, "run", str(manifest), "--workdir", f"{folder}/run", "--no-baseline"],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with start_cluster() as cluster:
        install_fedsilo(cluster)
        runs, local = [], []
        # Each run takes minutes: say where it stands (stderr; the table and JSON go to stdout).
        for i in range(args.repeats):
            runs.append(cluster_run(cluster, f"bench-{i}", args.rounds))
            print(
                f"cluster run {i + 1}/{args.repeats}: Running after {runs[-1][0]:.0f} s, "
                f"Succeeded after {runs[-1][1]:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        for i in range(args.repeats):
            local.append(local_run(args.rounds))
            print(f"local run {i + 1}/{args.repeats}: {local[-1]:.0f} s", file=sys.stderr, flush=True)
    to_running = statistics.median(run[0] for run in runs)
    to_succeeded = statistics.median(run[1] for run in runs)
    local_s = statistics.median(local)
    print_figures(
        f"cluster path vs local: quickstart, 3 silos, {args.rounds} rounds, median of {args.repeats}",
        [
            {
                "path": "cluster: apply -> all pods Running",
                "seconds": to_running,
                "ratio_to_local": to_running / local_s,
            },
            {"path": "cluster: apply -> Succeeded", "seconds": to_succeeded, "ratio_to_local": to_succeeded / local_s},
            {"path": "local: fedsilo run", "seconds": local_s, "ratio_to_local": 1.0},
        ],
    )


if __name__ == "__main__":
    main()
