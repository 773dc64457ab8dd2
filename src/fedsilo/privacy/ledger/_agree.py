"""Whether the hub's ledger and a silo's own agree on that silo's charges (issue #15).

Both ledgers charge a release under one row per (silo, job, round): the silo before the
release leaves it, the hub once it admits it. They agree when every round both charged
holds the same mechanism, accountant and delta and composes to the same epsilon in the job,
and the hub charged nothing the silo did not. The silo may hold rounds the hub lacks: a
release it charged and sent that the hub never admitted (refused, late, or its hub died
first) was still paid for. Lifetime figures are not compared: each ledger holds the jobs it
took part in.

The tests of resumed runs, of private statistics and of DP rounds check their two ledgers
with :func:`compare_ledgers`; an auditor holding both files can too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fedsilo.privacy import mechanism_json

from ._ledger import Charge, PrivacyLedger

# Both sides replay the same events through the same accountant: beyond float noise is another claim.
_EPSILON_TOLERANCE = 1e-9


@dataclass(frozen=True)
class LedgerAgreement:
    """The rounds (``job#round``) on which the hub's ledger and a silo's differ, or which only one holds."""

    silo: str
    differing: tuple[str, ...]
    only_hub: tuple[str, ...]
    only_silo: tuple[str, ...]

    @property
    def agree(self) -> bool:
        """No round differs and the hub charged none the silo did not (the silo may have paid for more)."""
        return not self.differing and not self.only_hub


def _facts(charge: Charge) -> tuple[bytes, str, float]:
    return mechanism_json(charge.mechanism), charge.accountant, charge.delta


def compare_ledgers(hub: PrivacyLedger, own: PrivacyLedger, silo: str, job: str | None = None) -> LedgerAgreement:
    """Compare ``silo``'s charges in the hub's ledger with those in its own (in ``job`` only, when given)."""
    theirs = {(c.job, c.round): c for c in hub.history(silo=silo, job=job)}
    mine = {(c.job, c.round): c for c in own.history(silo=silo, job=job)}
    differing = [
        f"{name}#{number}"
        for (name, number), charge in sorted(mine.items())
        if (other := theirs.get((name, number))) is not None
        and (
            _facts(other) != _facts(charge)
            or not math.isclose(other.epsilon_job, charge.epsilon_job, rel_tol=_EPSILON_TOLERANCE, abs_tol=1e-12)
        )
    ]
    return LedgerAgreement(
        silo=silo,
        differing=tuple(differing),
        only_hub=tuple(f"{name}#{number}" for name, number in sorted(set(theirs) - set(mine))),
        only_silo=tuple(f"{name}#{number}" for name, number in sorted(set(mine) - set(theirs))),
    )
