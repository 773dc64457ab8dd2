"""The hub's privacy ledger in a private statistics phase: what a silo's release would cost, and its charge.

``StatisticsPhase`` asks ``budget`` for the policy's ledger facts before it decides on a
silo's noised totals, and ``charge``s the silo once they are admitted, exactly as the
training rounds' ``LedgerBook`` does for an update: the hub's ledger then holds the same row
as the silo's own (``fedsilo.statistics.charge_release`` writes both), the policy's ceilings
count the release, and the job's status publishes what the hub charged. A silo left out by
the minimum-count rule, or refused, sends nothing into the sum and is charged nothing here.

A pass sent again (pass 2 after pass 1, or the whole phase taken again by a restarted hub)
finds the silo's row by its idempotency key: it costs nothing more, and the policy sees the
figures of the charge already made.
"""

from __future__ import annotations

from collections.abc import Iterable

from fedsilo.policy import BudgetView, Reason, Refusal
from fedsilo.privacy import mechanism_json
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.statistics import (
    STATISTICS_ROUND,
    StatisticsPlan,
    charge_release,
    release_budget,
    release_event,
    released_epsilon,
    statistics_key,
)


class StatisticsCharges:
    """The hub's ledger, seen from one statistics phase (whose plan names the run and the noise)."""

    def __init__(self, ledger: PrivacyLedger) -> None:
        self._ledger = ledger

    def budget(self, plan: StatisticsPlan, silo: str) -> BudgetView | None:
        """The silo's epsilon in the run now and if its release is admitted, and its lifetime figure; None without DP.

        Raises:
            Refusal: the run's round 0 is charged to ``silo`` for another release (another key or noise).
        """
        event = release_event(plan)
        if event is None:
            return None
        recorded = self._ledger.charged(silo, plan.job, STATISTICS_ROUND)
        if recorded is not None:
            same = recorded.idempotency_key == statistics_key(plan, silo) and mechanism_json(
                recorded.mechanism
            ) == mechanism_json(event)
            if not same:
                raise Refusal(
                    Reason.ROUND_ALREADY_CHARGED,
                    f"the statistics of {plan.job} were charged to {silo} for another release (row {recorded.seq})",
                )
            # The release sent again (the next pass, or the phase taken again): paid for already.
            return BudgetView(recorded.epsilon_job, recorded.epsilon_job, recorded.epsilon_lifetime)
        check = release_budget(self._ledger, plan, silo, job_ceiling=None, silo_ceiling=None)
        assert check is not None  # a plan with noise has an event
        projection = check.projection
        return BudgetView(projection.job_spent, projection.job_if_accepted, projection.lifetime_if_accepted)

    def charge(self, plan: StatisticsPlan, silo: str) -> float | None:
        """Charge the admitted silo's release once; its epsilon in the run after it (None without DP)."""
        charge = charge_release(self._ledger, plan, silo)
        return None if charge is None else charge.epsilon_job

    def released(self, plan: StatisticsPlan, silos: Iterable[str]) -> dict[str, float]:
        """Acknowledge the charges of the silos whose totals the released statistics hold; their epsilons."""
        if not plan.private:
            return {}
        spent = released_epsilon(self._ledger, plan.job, silos)
        for silo in spent:
            self._ledger.acknowledge(silo, plan.job, STATISTICS_ROUND)
        return spent
