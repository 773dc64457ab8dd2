"""The alert rules, checked and tested by the pinned promtool: each fires where it should and stays silent beside.

``promtool test rules`` runs deploy/monitoring/fedsilo-rules.test.yaml, whose cases pair a
series that must trip each alert with look-alikes that must not; a test here makes sure
every alert of the rules file has such a case, so a new alert cannot go untested.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import RULE_TESTS, RULES


def _alerts() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def test_promtool_accepts_the_rules_file(promtool_binary: Path) -> None:
    checked = subprocess.run(
        [str(promtool_binary), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=300
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_fires_and_stays_silent_as_its_tests_say(promtool_binary: Path) -> None:
    tested = subprocess.run(
        [str(promtool_binary), "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=RULE_TESTS.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_fails_a_rule_test_that_expects_the_wrong_alert(promtool_binary: Path, tmp_path: Path) -> None:
    # The harness can fail: the budget case expecting silence where the alert fires.
    cases = yaml.safe_load(RULE_TESTS.read_text())
    budget = cases["tests"][0]
    budget["alert_rule_test"][1]["exp_alerts"] = []
    cases["tests"] = [budget]
    cases["rule_files"] = [str(RULES)]
    wrong = tmp_path / "wrong.test.yaml"
    wrong.write_text(yaml.safe_dump(cases))
    tested = subprocess.run(
        [str(promtool_binary), "test", "rules", str(wrong)], capture_output=True, text=True, timeout=300
    )
    assert tested.returncode != 0
    assert "FedsiloPrivacyBudgetNearlyExhausted" in tested.stdout + tested.stderr


@pytest.mark.parametrize("alert", sorted(_alerts()))
def test_each_alert_has_a_firing_and_a_silent_case(alert: str) -> None:
    checks = [
        check
        for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for check in case.get("alert_rule_test", [])
        if check["alertname"] == alert
    ]
    assert any(check["exp_alerts"] for check in checks), f"{alert} has no case where it fires"
    assert any(not check["exp_alerts"] for check in checks), f"{alert} has no case where it stays silent"
