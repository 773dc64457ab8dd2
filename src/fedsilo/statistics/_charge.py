"""What a private statistics release costs a silo, and the one way both ledgers charge it.

A silo charges its own ledger before its totals leave (``StatisticsSilo.decline``); the hub
charges its ledger for every silo whose noised totals it admits (``fedsilo.aggregator``'s
``StatisticsPhase``). Both go through :func:`charge_release`, with the mechanism, delta,
accountant, round and idempotency key that only this module names, so the two ledgers hold
the same row for the same release and agree on its epsilon (issue #15). Both passes are one
release (``RELEASES`` Gaussian releases of one noise multiplier), charged once per run at
``STATISTICS_ROUND``: a pass sent again, or a phase taken again after a crash, finds the
row by its key instead of charging a second one.
"""

from __future__ import annotations

from collections.abc import Iterable

from fedsilo.privacy import AccountantKind, GaussianEvent
from fedsilo.privacy.ledger import BudgetCheck, Charge, PrivacyLedger, release_key

from ._plan import RELEASES, StatisticsPlan

#: The round the statistics phase is charged at: before training's first round.
STATISTICS_ROUND = 0
#: Both ledgers compose a statistics release with the RDP accountant (the plan calibrates its noise so).
STATISTICS_ACCOUNTANT: AccountantKind = "rdp"


def release_event(plan: StatisticsPlan) -> GaussianEvent | None:
    """The mechanism a private phase costs each silo that takes part (both passes), None without DP."""
    if plan.noise_multiplier is None:
        return None
    return GaussianEvent(plan.noise_multiplier, RELEASES, purpose="statistics")


def statistics_key(plan: StatisticsPlan, silo: str) -> str:
    """The idempotency key of ``silo``'s statistics release in this run, the same in both ledgers."""
    return release_key(plan.job, silo, STATISTICS_ROUND, "statistics")


def release_budget(
    ledger: PrivacyLedger,
    plan: StatisticsPlan,
    silo: str,
    *,
    job_ceiling: float | None,
    silo_ceiling: float | None,
) -> BudgetCheck | None:
    """Whether charging the release would cross the job's or the silo's ceiling; None without DP."""
    event = release_event(plan)
    if event is None:
        return None
    return ledger.would_exceed(
        silo,
        plan.job,
        event,
        job_ceiling=job_ceiling,
        silo_ceiling=silo_ceiling,
        delta=plan.delta,
        accountant=STATISTICS_ACCOUNTANT,
    )


def charge_release(ledger: PrivacyLedger, plan: StatisticsPlan, silo: str) -> Charge | None:
    """Charge ``silo``'s release to ``ledger`` once (the row already there when charged before); None without DP.

    Raises:
        LedgerConflict: the run's round 0 was charged to ``silo`` with other facts (another noise).
    """
    event = release_event(plan)
    if event is None:
        return None
    return ledger.charge(
        silo,
        plan.job,
        STATISTICS_ROUND,
        event,
        idempotency_key=statistics_key(plan, silo),
        delta=plan.delta,
        accountant=STATISTICS_ACCOUNTANT,
    )


def released_epsilon(ledger: PrivacyLedger, run: str, silos: Iterable[str]) -> dict[str, float]:
    """Each of ``silos`` charged for the statistics of ``run`` in ``ledger``: its epsilon in the run after that charge."""
    charges = ((silo, ledger.charged(silo, run, STATISTICS_ROUND)) for silo in silos)
    return {silo: charge.epsilon_job for silo, charge in charges if charge is not None}
