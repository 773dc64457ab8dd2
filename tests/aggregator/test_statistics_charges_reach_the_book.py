"""A job whose statistics are private has the hub's book even when it trains without DP (#14, #15).

The statistics phase charged the hub's ledger at round 0 under the job's run name; the rounds'
book over the same ledger then publishes its signed head with every round and each silo's
epsilon, charges no update of the plain training, and the job's status starts from the
statistics' charges (``ReportingObserver`` seeded with ``LedgerBook.spent``). A job that
charges no ledger at all gets no book.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedsilo.aggregator import LedgerBook
from fedsilo.api import (
    FederatedJob,
)
from fedsilo.identity import SigningKey
from fedsilo.privacy.ledger import PrivacyLedger, run_name
from fedsilo.runner import ReportingObserver
from fedsilo.statistics import StatisticsPlan, charge_release

from .conftest import LENGTH, RecordedRounds, job_document, running_hub

PRIVATE_STATISTICS = {"source": "tabular", "preprocessing": {"scaling": "standardize", "epsilon": 1.0}}


def _payload() -> np.ndarray:
    # A plain payload is [n * update..., n]: an update of 0.01 per weight from 100 records.
    payload = np.full(LENGTH, 100 * 0.01, np.float32)
    payload[-1] = 100
    return payload


def test_plain_training_after_private_statistics_charges_no_update_and_reports_the_statistics_epsilon(
    tmp_path: Path,
) -> None:
    names = ["a", "b"]
    hub_key = SigningKey.generate()
    ledger_path = tmp_path / "hub.sqlite"
    job = FederatedJob.model_validate(job_document(names, data=PRIVATE_STATISTICS))
    assert job.spec.privacy.mode.value == "none" and job.spec.charges_silos
    # What the statistics phase charged before round 1, under the run's name (``StatisticsCharges``).
    plan = StatisticsPlan.for_job(run_name("admission", "run"), job.spec, 14)
    with PrivacyLedger(ledger_path, hub_key) as ledger:
        statistics = {silo: charge_release(ledger, plan, silo) for silo in names}
    charged = {silo: charge.epsilon_job for silo, charge in statistics.items() if charge is not None}
    assert set(charged) == set(names)

    books: list[LedgerBook] = []

    def book(job: FederatedJob) -> LedgerBook:
        opened = LedgerBook.for_job(job, ledger_path, "run", hub_key)
        assert opened is not None, "a job with private statistics has a book"
        books.append(opened)
        return opened

    with running_hub(tmp_path, names, book, data=PRIVATE_STATISTICS) as hub:
        hub.open_round()
        for silo in hub.silos.values():
            assert silo.submit(silo.metadata(_payload()), _payload()).accepted
        summary = hub.first_summary()
    (opened,) = books
    try:
        assert summary.accepted == ("a", "b")
        assert all(summary.silos[silo].epsilon_spent is None for silo in names), "plain training charges nothing"
        assert summary.ledger_head is not None and summary.ledger_head == opened.signed_head()
        assert opened.spent() == charged and opened.statistics_spent(("a", "b")) == charged
    finally:
        opened.close()
    with PrivacyLedger(ledger_path, read_only=True) as ledger:
        assert [(c.silo, c.round) for c in ledger.history()] == [("a", 0), ("b", 0)]

    reports = RecordedRounds()
    observer = ReportingObserver(reports, None, charged)
    observer.round_finished(summary)
    observer.close(None)
    (report,) = reports.rounds
    assert dict(report.epsilon_spent) == charged, "the job's status keeps the statistics' epsilon"


def test_a_job_that_charges_no_ledger_has_no_book(tmp_path: Path) -> None:
    exact = FederatedJob.model_validate(
        job_document(["a"], data={"source": "tabular", "preprocessing": {"scaling": "standardize"}})
    )
    assert LedgerBook.for_job(exact, tmp_path / "hub.sqlite", "run") is None
    assert not (tmp_path / "hub.sqlite").exists()
