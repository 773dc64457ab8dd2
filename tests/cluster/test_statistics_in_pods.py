"""Federated statistics in real pods, as a phase and as a job of its own.

A job with federated preprocessing and private statistics: the aggregator's pod serves the
statistics phase before round 1, each silo's sidecar pod charges the ledger on its own volume,
and the hub's ledger, the job's status and the registry agree with what the silos did, as they
do in a local run (tests/e2e/test_statistics_phase_run.py). One job serves those assertions:
two rounds of the generated tabular workload (features on six orders of magnitude, label skew)
on the quickstart's three silos, standardized with the global scaler the phase fits, with
epsilon-DP statistics charged to every silo.

A statistics-only job (``rounds: 0``, examples/statistics-only.yaml on the quickstart's silos):
it succeeds at round 0 with its release in its status, and no round is opened.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fedsilo.datasets import PREPROCESSING_FILE, FittedPreprocessing
from fedsilo.launch import LEDGER_FILE, PRIVACY_LEDGER_FILE, REGISTRY_DIR
from fedsilo.operator._silo_objects import ledger_claim_name
from fedsilo.privacy.ledger import PrivacyLedger, compare_ledgers
from fedsilo.registry import LocalRegistry, preprocessing_path
from fedsilo.statistics import STATISTICS_ROUND
from fedsilo_testing.cluster import (
    JOB_NAMESPACE,
    SILOS,
    TEST_TIMEOUT_S,
    Cluster,
    aggregator_state_dir,
    apply_quickstart,
    claim_dir,
    delete_job,
    job_manifest,
    wait_finished,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(TEST_TIMEOUT_S)]

TABULAR = "tabular-private"
STATISTICS_ONLY = "census"
EPSILON = 2.0
ROUNDS = 2


@dataclass(frozen=True)
class StatisticsRun:
    """How the job ended, and where its aggregator's state and each silo's ledger are on the node."""

    status: dict[str, Any]
    state_dir: Path
    silo_ledgers: dict[str, Path]


def _tabular_job(name: str = TABULAR, rounds: int = ROUNDS) -> dict[str, Any]:
    """The quickstart job on the tabular workload, its preprocessing fitted by private statistics."""
    return job_manifest(
        name,
        rounds=rounds,
        model={"builtin": "logistic_regression"},
        data={
            "source": "tabular",
            "tabular": {"recordsPerSilo": 1000, "missingFraction": 0.02},
            "partition": {"scheme": "dirichlet", "alpha": 0.3},
            "preprocessing": {
                "scaling": "standardize",
                "categorical": [12, 13],
                "impute": "mean",
                "minCount": 10,
                "epsilon": EPSILON,
            },
        },
        training={"localEpochs": 1, "batchSize": 64, "learningRate": 0.1},
    )


@pytest.fixture(scope="module")
def statistics_run(fedsilo: Cluster) -> Iterator[StatisticsRun]:
    delete_job(fedsilo, TABULAR)
    apply_quickstart(fedsilo, _tabular_job())
    status = wait_finished(fedsilo, TABULAR)
    state_dir, _ = aggregator_state_dir(fedsilo, TABULAR)
    # Each silo's ledger claim is in its own namespace (the silo charts' workloadNamespace) and outlives the job.
    ledgers = {silo: claim_dir(fedsilo, silo, ledger_claim_name(silo)) / LEDGER_FILE for silo in SILOS}
    yield StatisticsRun(status, state_dir, ledgers)
    delete_job(fedsilo, TABULAR)


@pytest.fixture(scope="module")
def statistics_only_status(fedsilo: Cluster) -> Iterator[dict[str, Any]]:
    """The statistics-only job run to its end; its final status."""
    delete_job(fedsilo, STATISTICS_ONLY)
    apply_quickstart(fedsilo, _tabular_job(STATISTICS_ONLY, rounds=0))
    yield wait_finished(fedsilo, STATISTICS_ONLY)
    delete_job(fedsilo, STATISTICS_ONLY)


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_statistics_phase_runs_in_pods_before_training_and_the_job_succeeds(
    statistics_run: StatisticsRun,
) -> None:
    status = statistics_run.status
    assert status["phase"] == "Succeeded", status
    assert status["round"] == ROUNDS
    released = status["statistics"]
    assert sorted(released["silos"]) == sorted(SILOS), released
    assert not released.get("excluded"), released
    assert released["scaling"] == "standardize" and released["categorical"] == 2
    assert released["epsilon"] == EPSILON
    # The digests in the status are those of the files the aggregator's pod wrote to its volume.
    phase_dir = statistics_run.state_dir / "statistics"
    assert _sha256(phase_dir / "statistics.json") == released["statisticsDigest"]
    fitted = FittedPreprocessing.read(phase_dir / PREPROCESSING_FILE)
    assert fitted.digest() == released["preprocessingDigest"]


def test_every_model_in_the_registry_names_the_fitted_transform_kept_beside_it(
    statistics_run: StatisticsRun,
) -> None:
    digest = statistics_run.status["statistics"]["preprocessingDigest"]
    registry = statistics_run.state_dir / REGISTRY_DIR
    (job_dir,) = [path for path in registry.iterdir() if path.is_dir()]
    models = LocalRegistry(registry).list(job_dir.name)
    assert [model.lineage.round for model in models] == list(range(1, ROUNDS + 1))
    assert {model.lineage.evidence["preprocessing"] for model in models} == {digest}
    fitted = FittedPreprocessing.read(statistics_run.state_dir / "statistics" / PREPROCESSING_FILE)
    assert preprocessing_path(job_dir, digest).read_bytes() == fitted.canonical_bytes()


def test_each_silo_pod_charged_its_own_ledger_once_and_the_hub_ledger_agrees(statistics_run: StatisticsRun) -> None:
    spent = statistics_run.status["statistics"]["epsilonSpent"]
    assert sorted(spent) == sorted(SILOS)
    with PrivacyLedger(statistics_run.state_dir / PRIVACY_LEDGER_FILE, read_only=True) as hub:
        hub.verify()
        for silo, path in statistics_run.silo_ledgers.items():
            with PrivacyLedger(path, read_only=True) as own:
                own.verify()
                # The claim outlives jobs: this job's run is the one the hub's ledger charged.
                (theirs,) = hub.history(silo=silo)
                (mine,) = own.history(silo=silo, job=theirs.job)
                agreement = compare_ledgers(hub, own, silo, job=theirs.job)
            assert agreement.agree and not agreement.only_silo, agreement
            assert mine.round == STATISTICS_ROUND and mine.idempotency_key == theirs.idempotency_key
            assert 0.0 < mine.epsilon_job <= EPSILON + 1e-3
            # What the status says the hub charged is the row both ledgers hold; training charged nothing.
            assert spent[silo] == pytest.approx(mine.epsilon_job)
            assert theirs.acknowledged_at is not None
    assert statistics_run.status["epsilon"] == pytest.approx(spent)


def test_a_statistics_only_job_succeeds_at_round_0_with_its_release_and_opens_no_round(
    fedsilo: Cluster, statistics_only_status: dict[str, Any]
) -> None:
    status = statistics_only_status
    assert status["phase"] == "Succeeded", status
    assert status["round"] == 0 and "latestModel" not in status, status
    released = status["statistics"]
    assert sorted(released["silos"]) == sorted(SILOS) and released["epsilon"] == EPSILON
    assert sorted(released["epsilonSpent"]) == sorted(SILOS)
    selector = f"involvedObject.kind=FederatedJob,involvedObject.name={STATISTICS_ONLY}"
    reasons = [
        event["reason"] for event in fedsilo.get("events", "-n", JOB_NAMESPACE, "--field-selector", selector)["items"]
    ]
    assert "StatisticsReleased" in reasons and "JobSucceeded" in reasons, reasons
    assert "RoundCompleted" not in reasons, reasons
    # The state on the node holds the release and nothing trained.
    state_dir, _ = aggregator_state_dir(fedsilo, STATISTICS_ONLY)
    assert _sha256(state_dir / "statistics" / "statistics.json") == released["statisticsDigest"]
    assert not (state_dir / "checkpoints").exists() and not any((state_dir / REGISTRY_DIR).glob("*/*.safetensors"))
