"""A job's statistics phase shows on the FederatedJob: the aggregator publishes the release, the operator a condition.

A private release's charges become each silo's epsilon in the job, which the silo operator sums
into the Silo's ``epsilonSpent``. The release travels as every round does (the aggregator's ``KubeStatusReporter``, through
its narrow grant, into ``status.statistics`` with an Event); the hub operator turns it
into the ``StatisticsReleased`` condition of a job whose preprocessing the phase fits.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kopf.testing import KopfRunner

from fedsilo.api import JobOutcome, StatisticsStatus
from fedsilo.kube import KubeApi, KubeStatusReporter, load_access
from fedsilo.kube._reporter import FIELD_MANAGER as AGGREGATOR_FIELD_MANAGER
from fedsilo.operator._conditions import JobFacts, job_status
from fedsilo.runner._aggregator import STATISTICS_ONLY_OUTCOME
from fedsilo_testing import ControlPlane

from .conftest import (
    EXAMPLES,
    apply_file,
    apply_objects,
    children,
    condition,
    get,
    mark_available,
    running_operator,
    service_account_kubeconfig,
    unique,
    wait_for,
    wait_for_condition,
)

TABULAR = EXAMPLES / "tabular.yaml"
RELEASE = StatisticsStatus(
    released_at="2026-11-29T18:00:00Z",
    silos=["bank-a", "bank-b", "bank-c"],
    excluded={"bank-d": "below_min_count: fewer training records than the job's minCount (10)"},
    features=14,
    categorical=2,
    transformed_features=20,
    scaling="standardize",
    epsilon=1.0,
    # What the hub's ledger charged each counted silo (RDP: a little under the target).
    epsilon_spent=dict.fromkeys(["bank-a", "bank-b", "bank-c"], 0.99975),
    statistics_digest="sha256:" + "ab" * 32,
    preprocessing_digest="sha256:" + "cd" * 32,
)


@pytest.fixture(scope="module")
def namespace(cluster: ControlPlane) -> str:
    return cluster.create_namespace(unique("statistics"))


@pytest.fixture(scope="module")
def operator(cluster: ControlPlane, namespace: str) -> Iterator[KopfRunner]:
    with running_operator([namespace], cluster.kubeconfig) as runner:
        yield runner


@pytest.mark.integration
def test_the_aggregator_publishes_the_release_and_the_operator_marks_it_on_the_job(
    cluster: ControlPlane, admin: KubeApi, namespace: str, operator: KopfRunner, tmp_path: Path
) -> None:
    apply_file(cluster, namespace, TABULAR)
    wait_for(lambda: ("Deployment", "tabular-aggregator") in children(admin, namespace), "the aggregator Deployment")
    mark_available(cluster, namespace, "tabular-aggregator")
    job = wait_for(
        lambda: (
            (j := get(cluster, namespace, "federatedjob", "tabular")) and j["status"].get("phase") == "Running" and j
        ),
        "Running",
    )
    pending = condition(job, "StatisticsReleased")
    assert (pending["status"], pending["reason"]) == ("False", "StatisticsPending")

    # The aggregator's own identity: its grant lets it write its job's status and Events, nothing else.
    kubeconfig = service_account_kubeconfig(
        cluster, namespace, "tabular-aggregator", tmp_path / "aggregator.kubeconfig"
    )
    reporter = KubeStatusReporter(
        KubeApi(load_access(kubeconfig), AGGREGATOR_FIELD_MANAGER),
        "tabular",
        namespace,
        job["metadata"]["uid"],
        "tabular-aggregator-0",
    )
    reporter.statistics_released(RELEASE)

    released = wait_for_condition(cluster, namespace, "tabular", "StatisticsReleased")
    assert released["status"]["statistics"] == RELEASE.model_dump(by_alias=True, exclude_none=True, mode="json")
    marked = condition(released, "StatisticsReleased")
    assert marked["reason"] == "StatisticsReleased"
    assert "3 silos released statistics over 14 features (1 left out)" in marked["message"]
    assert RELEASE.preprocessing_digest in marked["message"]
    assert condition(released, "Ready")["status"] == "True", "the other conditions are untouched"
    # A private release is each silo's first spend in the job, and so on its Silo, which sums its jobs.
    assert released["status"]["epsilon"] == RELEASE.epsilon_spent and released["status"]["maxEpsilonSpent"] == 0.99975
    assert wait_for(
        lambda: get(cluster, namespace, "silo", "bank-a")["status"].get("epsilonSpent") == 0.99975,
        "the statistics' epsilon on the Silo",
    )

    events = get(cluster, namespace, "events", "--field-selector", "involvedObject.name=tabular")["items"]
    (event,) = [e for e in events if e["reason"] == "StatisticsReleased"]
    assert event["type"] == "Normal"
    assert "Statistics of 3 silos over 14 features" in event["message"]
    assert "bank-d left out: below_min_count" in event["message"]


def test_a_job_that_failed_before_its_release_says_so_and_a_job_without_a_phase_has_no_such_condition() -> None:
    failed = JobFacts(
        generation=1,
        rounds=10,
        result="Failed",
        message="the statistics phase failed: only 1 silo took part",
        statistics_phase=True,
    )
    (marked,) = [c for c in job_status(failed, [])["conditions"] if c["type"] == "StatisticsReleased"]
    assert (marked["status"], marked["reason"]) == ("False", "JobFailed")
    assert "only 1 silo took part" in marked["message"]
    plain = job_status(JobFacts(generation=1, rounds=10, aggregator_available=True), [])
    assert [c["type"] for c in plain["conditions"]] == ["Ready", "Progressing", "Degraded"]


def _statistics_only(name: str) -> list[dict[str, object]]:
    """The tabular example as a statistics-only job called ``name``, with its Silos."""
    job, *silos = yaml.safe_load_all(TABULAR.read_text())
    job["metadata"]["name"] = name
    job["spec"]["rounds"] = 0
    return [job, *silos]


@pytest.mark.integration
def test_a_statistics_only_job_runs_its_phase_then_succeeds_at_round_zero_with_its_release(
    cluster: ControlPlane, admin: KubeApi, namespace: str, operator: KopfRunner, tmp_path: Path
) -> None:
    apply_objects(cluster, namespace, *_statistics_only("census"))
    wait_for(lambda: ("Deployment", "census-aggregator") in children(admin, namespace), "the aggregator Deployment")
    mark_available(cluster, namespace, "census-aggregator")
    job = wait_for(
        lambda: (
            (j := get(cluster, namespace, "federatedjob", "census")) and j["status"].get("phase") == "Running" and j
        ),
        "Running",
    )
    assert job["status"]["round"] == 0
    running = condition(job, "Progressing")
    assert (running["reason"], running["message"]) == (
        "StatisticsPhase",
        "the statistics phase runs; a statistics-only job ends with it and trains no round",
    )
    assert "trains no round" in condition(job, "StatisticsReleased")["message"]

    # What the aggregator reports at the end of such a job, through its own narrow grant.
    kubeconfig = service_account_kubeconfig(cluster, namespace, "census-aggregator", tmp_path / "aggregator.kubeconfig")
    reporter = KubeStatusReporter(
        KubeApi(load_access(kubeconfig), AGGREGATOR_FIELD_MANAGER),
        "census",
        namespace,
        job["metadata"]["uid"],
        "census-aggregator-0",
    )
    reporter.statistics_released(RELEASE)
    reporter.job_finished(JobOutcome(True, 0, STATISTICS_ONLY_OUTCOME))

    done = wait_for(
        lambda: (
            (j := get(cluster, namespace, "federatedjob", "census")) and j["status"].get("phase") == "Succeeded" and j
        ),
        "Succeeded",
    )
    assert done["status"]["round"] == 0 and done["status"]["message"] == STATISTICS_ONLY_OUTCOME
    assert done["status"]["statistics"] == RELEASE.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert condition(done, "StatisticsReleased")["status"] == "True"
    ready, progressing = condition(done, "Ready"), condition(done, "Progressing")
    assert (ready["status"], ready["reason"]) == ("False", "JobSucceeded")
    assert (progressing["status"], progressing["reason"]) == ("False", "JobSucceeded")
    assert condition(done, "Degraded")["status"] == "False"
    # The printer columns: Round 0, and the largest epsilon the statistics charged.
    header, row = cluster.kubectl("get", "fj", "census", "-n", namespace).stdout.splitlines()[:2]

    def cell(column: str) -> str:  # empty cells make split() useless: read at the header's offset
        return row[header.index(column) :].split()[0]

    assert (cell("PHASE"), cell("ROUND"), cell("EPSILON")) == ("Succeeded", "0", "0.99975")
    events = get(cluster, namespace, "events", "--field-selector", "involvedObject.name=census")["items"]
    reasons = [e["reason"] for e in events]
    assert "StatisticsReleased" in reasons and "JobSucceeded" in reasons and "RoundCompleted" not in reasons


def test_a_statistics_only_job_counts_no_rounds_in_its_conditions() -> None:
    running = job_status(JobFacts(generation=1, rounds=0, aggregator_available=True, statistics_phase=True), [])
    assert running["round"] == 0 and running["phase"] == "Running"
    (progressing,) = [c for c in running["conditions"] if c["type"] == "Progressing"]
    assert progressing["reason"] == "StatisticsPhase" and "rounds completed" not in progressing["message"]
    finished = job_status(
        JobFacts(generation=1, rounds=0, result="Succeeded", message=STATISTICS_ONLY_OUTCOME, statistics_phase=True), []
    )
    assert finished["round"] == 0 and finished["phase"] == "Succeeded"
    trains = job_status(JobFacts(generation=1, rounds=10, aggregator_available=True), [])
    assert "round" not in trains, "a job that trains has its round from the aggregator's reports"
