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
from kopf.testing import KopfRunner

from fedsilo.api import StatisticsStatus
from fedsilo.kube import KubeApi, KubeStatusReporter, load_access
from fedsilo.kube._reporter import FIELD_MANAGER as AGGREGATOR_FIELD_MANAGER
from fedsilo.operator._conditions import JobFacts, job_status
from fedsilo_testing import ControlPlane

from .conftest import (
    EXAMPLES,
    apply_file,
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
