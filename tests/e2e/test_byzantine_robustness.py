"""One silo of five attacking: FedAvg's model is ruined, the robust strategies keep the no-attack accuracy.

Every run is a real ``fedsilo run`` (``LocalRun``: hub, sidecars, sandboxed trainers, mTLS)
of a small digits job in plain mode, the only mode in which the hub holds the updates a
robust rule needs (``fedsilo_testing.attack_runs``). The attacker is
``fedsilo_testing.attacks``: its trainer sends ten times its honest update with the sign
flipped, and its sidecar's limits are raised out of the way, as a partner running a
modified sidecar would have them (masked mode's bounds are issue 18's other half).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fedsilo.runner import RunReport
from fedsilo_testing.attack_runs import run_attacked
from fedsilo_testing.attacks import Attack, AttackPlan

ATTACKER = "hospital-4"
# The no-attack accuracy a defense must keep within (it may drop an honest silo's update too).
DEFENSE_SLACK = 0.1
# How far below the no-attack accuracy the attacked FedAvg must fall for the attack to count as working.
ATTACK_DAMAGE = 0.3


def finished(tmp_path: Path, label: str, strategy: dict[str, Any], plan: AttackPlan) -> RunReport:
    # Two-letter folders: the trainers' socket paths must stay under the OS's 108 bytes.
    report = run_attacked(tmp_path / label, strategy, plan)
    assert report.status == "succeeded", report.failure
    assert report.final_accuracy is not None
    return report


# Five whole runs of five silos each: 8 to 10 minutes on a loaded two-core machine.
@pytest.mark.timeout(2400)
def test_one_attacker_ruins_fedavg_not_robust_rules(tmp_path: Path) -> None:
    attack = AttackPlan(attack=Attack.SIGN_FLIP, attackers=(ATTACKER,), scale=10.0)
    clean = finished(tmp_path, "cl", {"name": "fedavg"}, AttackPlan()).final_accuracy
    strategies: dict[str, dict[str, Any]] = {
        "fedavg": {"name": "fedavg"},
        "median": {"name": "median"},
        "trimmed_mean": {"name": "trimmed_mean", "trimFraction": 0.2},
        "multikrum": {"name": "multikrum", "byzantineSilos": 1},
    }
    reports = {name: finished(tmp_path, name[:2], strategy, attack) for name, strategy in strategies.items()}
    results = {name: report.final_accuracy for name, report in reports.items()}
    print({"clean": clean, **results})
    assert clean is not None
    fedavg = results["fedavg"]
    assert fedavg is not None and fedavg < clean - ATTACK_DAMAGE, (clean, results)
    for name in ("median", "trimmed_mean", "multikrum"):
        accuracy = results[name]
        assert accuracy is not None and accuracy >= clean - DEFENSE_SLACK, (name, clean, results)
    # The anomaly signal: the attacker points against the step median took, every honest silo along it.
    for row in reports["median"].rounds:
        attacker = row.update_cosine[ATTACKER]
        assert attacker is not None and attacker < 0, row.update_cosine
        honest_cosines = [c for silo, c in row.update_cosine.items() if silo != ATTACKER]
        assert all(c is not None and c > 0 for c in honest_cosines), row.update_cosine
        assert row.update_distance[ATTACKER] > max(d for s, d in row.update_distance.items() if s != ATTACKER)


# One whole run of five silos: 2 to 3 minutes on a loaded two-core machine.
@pytest.mark.timeout(1200)
def test_the_policy_denies_the_attacker_once_its_score_is_above_the_limit(tmp_path: Path) -> None:
    attack = AttackPlan(attack=Attack.SIGN_FLIP, attackers=(ATTACKER,), scale=10.0)
    report = run_attacked(tmp_path / "an", {"name": "median"}, attack, rounds=4, max_anomaly_score=5.0, min_silos=4)
    assert report.status == "succeeded", report.failure
    first, *later = report.rounds
    # Round 1 has no past to judge: every update enters, and the attacker's score rises.
    assert first.denied == {} and first.anomaly_score[ATTACKER] > 5.0, first.anomaly_score
    assert all(first.anomaly_score[s] < 1.0 for s in first.anomaly_score if s != ATTACKER), first.anomaly_score
    # From then on the attacker is denied while its score is above the limit; no honest silo ever is.
    row = later[0]
    assert list(row.denied) == [ATTACKER], row.denied
    assert row.denied[ATTACKER][0].startswith(f"update_anomalous: silo {ATTACKER} has anomaly score")
    assert all(set(r.denied) <= {ATTACKER} for r in later), [r.denied for r in later]
