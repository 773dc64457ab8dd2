"""One whole run with a sign-flipping silo: the hub's anomaly scores single it out and the policy denies it.

A real ``fedsilo run`` (``LocalRun``: hub, sidecars, sandboxed trainers, mTLS, OPA) of a
small digits job in plain mode (``fedsilo_testing.attack_runs``). The attacker is
``fedsilo_testing.attacks``: its trainer sends ten times its honest update with the sign
flipped, and its sidecar's limits are raised out of the way, as a partner running a modified
sidecar would have them. What the robust rules do to the accuracy is proven in one process
(tests/robustness/test_defenses_keep_accuracy_under_attack.py); this run proves what only
the whole path shows: the attack travels through a trainer process, the report's signals
point at it, and the policy denies it with its reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsilo_testing.attack_runs import run_attacked
from fedsilo_testing.attacks import Attack, AttackPlan

ATTACKER = "hospital-4"


# One whole run of five silos: 2 to 3 minutes on a loaded two-core machine.
@pytest.mark.timeout(1200)
def test_the_policy_denies_the_attacker_once_its_score_is_above_the_limit(tmp_path: Path) -> None:
    attack = AttackPlan(attack=Attack.SIGN_FLIP, attackers=(ATTACKER,), scale=10.0)
    report = run_attacked(tmp_path / "an", {"name": "median"}, attack, rounds=3, max_anomaly_score=5.0, min_silos=4)
    assert report.status == "succeeded", report.failure
    first, *later = report.rounds
    # Round 1 has no past to judge: every update enters, and against the median's step the
    # attacker points backwards, every honest silo along it, and the attacker is farthest.
    assert first.denied == {}
    assert first.update_cosine[ATTACKER] is not None and first.update_cosine[ATTACKER] < 0, first.update_cosine
    honest = {s: c for s, c in first.update_cosine.items() if s != ATTACKER}
    assert all(c is not None and c > 0 for c in honest.values()), first.update_cosine
    distances = first.update_distance
    assert distances[ATTACKER] > max(d for s, d in distances.items() if s != ATTACKER), distances
    assert first.anomaly_score[ATTACKER] > 5.0, first.anomaly_score
    assert all(first.anomaly_score[s] < 1.0 for s in first.anomaly_score if s != ATTACKER), first.anomaly_score
    # From then on the attacker is denied while its score is above the limit; no honest silo ever is.
    row = later[0]
    assert list(row.denied) == [ATTACKER], row.denied
    assert row.denied[ATTACKER][0].startswith(f"update_anomalous: silo {ATTACKER} has anomaly score")
    assert all(set(r.denied) <= {ATTACKER} for r in later), [r.denied for r in later]
