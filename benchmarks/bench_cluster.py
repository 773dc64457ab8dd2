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

With ``--kills N``, issue #15's cluster figure instead: time from an aggregator kill to the
next round accepted. One job (the quickstart's 3 silos, ``KILL_EPOCHS`` local epochs so a
round outlasts the poll, rounds enough to outlast every kill), whose ``status.round`` (the
aggregator reports each round it closes) is polled every ``KILL_POLL_S``:
  round_s            baseline, the same run: the time between consecutive rounds before
                     the first kill (``BASELINE_ROUNDS`` of them)
  delete_to_gone_s   ``kubectl delete pod`` of the aggregator, default grace period, until the
                     pod is gone (its containers stop on SIGTERM; ignored, it was 30 s)
  kill_to_next_s     from that delete to the round after the last one the old pod closed
                     being accepted: the Deployment's new pod scheduled and started, its last
                     checkpoint loaded, the sidecars joined again, and one round
each the median of N kills, one kill right after each of N round boundaries (the next
kill once the job is past the resumed round again). Times are this process's clock around
kubectl calls: each figure is good to about a poll plus a kubectl round trip.

    sudo .venv/bin/python benchmarks/bench_cluster.py --kills 3
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

from fedsilo.operator._hub_objects import AGGREGATOR
from fedsilo.operator._names import COMPONENT_LABEL, JOB_LABEL
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
#: The kill benchmark's job: local epochs per round (a round of about a second or two on an
#: idle node, as the killed-pods test's job), its poll of status.round, and the rounds
#: measured as the baseline before the first kill.
KILL_EPOCHS = 12
KILL_POLL_S = 0.2
BASELINE_ROUNDS = 4
#: Rounds of the kill job per kill (the kill, the restart, one round after it, with room to
#: spare), on top of the baseline; the job is deleted once measured, not run to its end.
ROUNDS_PER_KILL = 40
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


def _round(cluster: Cluster, name: str) -> int:
    """The job's last accepted round (0 before the first); exits if the job stopped running."""
    status = job_status(cluster, name)
    if status.get("phase") in ("Failed", "Succeeded"):
        raise SystemExit(f"job {name} ended before the kills were measured: {status}")
    return int(status.get("round") or 0)


def _round_after(cluster: Cluster, name: str, after: int, timeout: float = 900) -> tuple[int, float]:
    """Poll until the job's round passes ``after``; that round and when it was seen (perf_counter)."""
    deadline = time.perf_counter() + timeout
    while (current := _round(cluster, name)) <= after:
        if time.perf_counter() > deadline:
            raise SystemExit(f"job {name} stayed at round {current} for {timeout:.0f} s: {job_status(cluster, name)}")
        time.sleep(KILL_POLL_S)
    return current, time.perf_counter()


def kill_run(cluster: Cluster, name: str, kills: int) -> tuple[list[float], list[float], list[float]]:
    """One job, ``kills`` deletions of its aggregator pod; round times, delete-to-gone and kill-to-next seconds."""
    delete_job(cluster, name)
    training = {**job_manifest(name, rounds=1)["spec"]["training"], "localEpochs": KILL_EPOCHS}
    rounds = BASELINE_ROUNDS + 2 + ROUNDS_PER_KILL * kills
    apply_quickstart(cluster, job_manifest(name, rounds=rounds, training=training))
    aggregator = f"{JOB_LABEL}={name},{COMPONENT_LABEL}={AGGREGATOR}"
    # Round 1 includes the pods' start: the baseline begins at the first boundary after it.
    seen, at = _round_after(cluster, name, 0, timeout=1800)
    round_s = []
    for _ in range(BASELINE_ROUNDS):
        # A round missed between two polls (shorter than a poll plus kubectl) is not a round time.
        previous, previous_at = seen, at
        seen, at = _round_after(cluster, name, seen)
        if seen == previous + 1:
            round_s.append(at - previous_at)
    gone_s, next_s = [], []
    for i in range(kills):
        seen, _ = _round_after(cluster, name, seen)  # the kill lands just after a round boundary
        pod = cluster.get("pods", "-n", JOB_NAMESPACE, "-l", aggregator)["items"][0]["metadata"]["name"]
        killed = time.perf_counter()
        cluster.kubectl("delete", "pod", pod, "-n", JOB_NAMESPACE, "--wait=true", timeout=300)
        gone = time.perf_counter()
        # The last round the old pod closed (it serves until SIGTERM): the next one is the new pod's.
        closed = _round(cluster, name)
        seen, accepted = _round_after(cluster, name, closed)
        gone_s.append(gone - killed)
        next_s.append(accepted - killed)
        print(
            f"kill {i + 1}/{kills}: pod gone after {gone_s[-1]:.1f} s, round {seen} accepted "
            f"{next_s[-1]:.1f} s after the delete",
            file=sys.stderr,
            flush=True,
        )
    delete_job(cluster, name)
    return round_s, gone_s, next_s


def kill_figures(cluster: Cluster, kills: int) -> None:
    """Issue #15's cluster figure: the median kill-to-next-round beside the plain round time of the same run."""
    round_s, gone_s, next_s = kill_run(cluster, "bench-kill", kills)
    round_median = statistics.median(round_s)
    print_figures(
        f"aggregator pod deleted -> next round accepted: quickstart, 3 silos, {KILL_EPOCHS} local epochs, "
        f"median of {kills} kills (baseline: {len(round_s)} rounds of the same run)",
        [
            {"figure": "plain round (baseline)", "seconds": round_median, "ratio_to_round": 1.0},
            {
                "figure": "delete -> aggregator pod gone",
                "seconds": statistics.median(gone_s),
                "ratio_to_round": statistics.median(gone_s) / round_median,
            },
            {
                "figure": "delete -> next round accepted",
                "seconds": statistics.median(next_s),
                "ratio_to_round": statistics.median(next_s) / round_median,
            },
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--kills", type=int, default=0, help="measure N aggregator pod kills instead of the cluster path's cost"
    )
    args = parser.parse_args()

    with start_cluster() as cluster:
        install_fedsilo(cluster)
        if args.kills:
            kill_figures(cluster, args.kills)
            return
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
