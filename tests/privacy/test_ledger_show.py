"""What ``fedsilo ledger show`` prints: charges per silo and job with their rounds, mechanisms and
cumulative epsilons, as JSON and as a table."""

from __future__ import annotations

import json

from rich.console import Console

from fedsilo.privacy import DpSgdEvent, GaussianEvent
from fedsilo.privacy.ledger import PrivacyLedger, describe_mechanism, ledger_report, ledger_table


def _fill(ledger: PrivacyLedger) -> None:
    ledger.charge("hospital-a", "job-1", 1, GaussianEvent(2.0, 1), idempotency_key="a1", delta=1e-5)
    ledger.charge("hospital-b", "job-1", 1, GaussianEvent(2.0, 1), idempotency_key="b1", delta=1e-5)
    ledger.charge("hospital-a", "job-1", 2, GaussianEvent(2.0, 1), idempotency_key="a2", delta=1e-5)
    ledger.charge("hospital-a", "job-2", 1, DpSgdEvent(1.1, 0.01, 100), idempotency_key="a3", delta=1e-6)
    ledger.acknowledge("hospital-a", "job-1", 1)


def test_the_report_groups_rounds_per_silo_and_job_and_is_json(ledger: PrivacyLedger) -> None:
    _fill(ledger)
    report = ledger_report(ledger.history())
    assert json.loads(json.dumps(report)) == report
    assert [s["silo"] for s in report] == ["hospital-a", "hospital-b"]
    hospital_a = report[0]
    assert [j["job"] for j in hospital_a["jobs"]] == ["job-1", "job-2"]
    job_1 = hospital_a["jobs"][0]
    assert [r["round"] for r in job_1["rounds"]] == [1, 2]
    assert [r["acknowledged"] for r in job_1["rounds"]] == [True, False]
    assert job_1["rounds"][0]["mechanism"] == {"kind": "gaussian", "noise_multiplier": 2.0, "count": 1}
    last = ledger.history("hospital-a")[-1]
    assert hospital_a["epsilon_lifetime"] == last.epsilon_lifetime
    assert hospital_a["jobs"][1] | {"rounds": None} == {
        "job": "job-2",
        "accountant": "rdp",
        "delta": 1e-6,
        "epsilon": last.epsilon_job,
        "rounds": None,
    }


def test_the_table_shows_one_line_per_charge(ledger: PrivacyLedger) -> None:
    _fill(ledger)
    table = ledger_table(ledger.history())
    assert table.row_count == 4
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "DP-SGD sigma=1.1 q=0.01 x 100" in text
    assert text.count("pending") == 3


def test_mechanisms_read_in_one_line() -> None:
    assert describe_mechanism(GaussianEvent(2.0, 3)) == "Gaussian sigma=2 x 3"
    assert describe_mechanism(DpSgdEvent(1.1, 256 / 60000, 14063)) == "DP-SGD sigma=1.1 q=0.00427 x 14063"
