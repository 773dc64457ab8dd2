"""The local report's epsilon starts from what the hub's ledger charged for a private statistics release.

A job trained without DP has no round epsilon at all: its report still shows each silo's
statistics epsilon (``statistics_epsilon``, read from the hub's ledger by ``LocalRun``) as the
silo's spend, and a DP job's rounds carry the hub ledger's composed figures, which include it.
"""

from __future__ import annotations

import json

from fedsilo.runner import RoundRow, RunReport

STATISTICS = {"bank-a": 0.9997, "bank-b": 0.9997}


def _report(rounds: list[RoundRow]) -> RunReport:
    return RunReport(
        job="tabular",
        status="succeeded",
        aggregation="masked",
        strategy="fedavg",
        isolation="process",
        workdir="run",
        rounds=rounds,
        statistics_epsilon=dict(STATISTICS),
    )


def _round(number: int, spent: dict[str, float | None]) -> RoundRow:
    return RoundRow(
        round=number,
        loss=None,
        accuracy=None,
        participants=sorted(spent),
        accepted=sorted(spent),
        dropped=[],
        denied={},
        seconds=1.0,
        bytes_up={},
        bytes_down={},
        payload_up={},
        epsilon={silo: None for silo in spent},
        epsilon_spent=spent,
        model_digest="sha256:" + "ab" * 32,
    )


def test_plain_training_after_private_statistics_reports_the_statistics_epsilon_every_round() -> None:
    report = _report([_round(1, {"bank-a": None, "bank-b": None}), _round(2, {"bank-a": None, "bank-b": None})])
    assert report.private
    assert report.cumulative_epsilon() == [STATISTICS, STATISTICS]
    assert json.loads(report.to_json())["epsilon_spent"] == STATISTICS


def test_a_dp_round_replaces_the_statistics_figure_with_the_ledgers_composed_one() -> None:
    report = _report([_round(1, {"bank-a": 1.7, "bank-b": None})])
    assert report.cumulative_epsilon() == [{"bank-a": 1.7, "bank-b": STATISTICS["bank-b"]}]


def test_a_report_without_rounds_still_shows_the_statistics_epsilon() -> None:
    assert json.loads(_report([]).to_json())["epsilon_spent"] == STATISTICS
