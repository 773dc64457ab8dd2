"""One silo of five attacking: FedAvg's model is ruined, the robust strategies keep the no-attack accuracy.

What the whole-run test (tests/e2e/test_byzantine_robustness.py) proved with six whole
runs, in one process (``fedsilo_testing.robust_simulation``): the built-in torch model on
the digits job the whole runs use, the attacker sending ten times its honest update with
the sign flipped (``fedsilo_testing.attacks.poison``), the hub's side the shipped strategies.
The runs are shared by every assertion (module scope); the whole-run test keeps one run
for what only a whole run shows (the policy denying the attacker through the hub).
"""

from __future__ import annotations

import pytest

from fedsilo_testing.attacks import Attack
from fedsilo_testing.robust_simulation import Scenario, SimulatedRun, simulate

# The no-attack accuracy a defense must keep within (it may drop an honest silo's update too).
DEFENSE_SLACK = 0.1
# How far below the no-attack accuracy the attacked FedAvg must fall for the attack to count as working.
ATTACK_DAMAGE = 0.3
ROBUST = ("median", "trimmed_mean", "multikrum", "centered_clipping")


def _run(defense: str, attack: Attack = Attack.NONE) -> SimulatedRun:
    attackers = 0 if attack is Attack.NONE else 1
    return simulate(Scenario(defense, attack, attackers, seed=3, silos=5, rounds=3, alpha=None))


@pytest.fixture(scope="module")
def runs() -> dict[str, SimulatedRun]:
    """The clean FedAvg run, and every defense with one sign-flipping silo of five."""
    return {"clean": _run("fedavg"), **{name: _run(name, Attack.SIGN_FLIP) for name in ("fedavg", *ROBUST)}}


def test_one_sign_flipping_silo_ruins_fedavg(runs: dict[str, SimulatedRun]) -> None:
    clean, attacked = runs["clean"].final_accuracy, runs["fedavg"].final_accuracy
    assert attacked < clean - ATTACK_DAMAGE, (clean, attacked)


@pytest.mark.parametrize("defense", ROBUST)
def test_each_robust_rule_keeps_the_no_attack_accuracy(runs: dict[str, SimulatedRun], defense: str) -> None:
    clean, defended = runs["clean"].final_accuracy, runs[defense].final_accuracy
    assert defended >= clean - DEFENSE_SLACK, (defense, clean, defended)


def test_against_the_median_step_the_attacker_points_backwards_and_every_honest_silo_along(
    runs: dict[str, SimulatedRun],
) -> None:
    for row in runs["median"].rounds:
        attacker, *honest = row.cosine.values()
        assert attacker < 0 < min(honest), row.cosine
