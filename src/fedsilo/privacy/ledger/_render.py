"""What ``fedsilo ledger show`` prints: the ledger per silo and job, as a rich table or JSON-able dicts.

The CLI calls these with ``PrivacyLedger.history()``; they only arrange charges and do
not verify the chain (``PrivacyLedger.verify`` does).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table

from fedsilo.privacy import DpSgdEvent, Mechanism

from ._ledger import Charge


def describe_mechanism(mechanism: Mechanism) -> str:
    """A mechanism in one short line, e.g. ``DP-SGD sigma=1.1 q=0.00427 x 235``."""
    if isinstance(mechanism, DpSgdEvent):
        return f"DP-SGD sigma={mechanism.noise_multiplier:g} q={mechanism.sample_rate:.3g} x {mechanism.steps}"
    suffix = "" if mechanism.purpose == "training" else f" ({mechanism.purpose})"
    return f"Gaussian sigma={mechanism.noise_multiplier:g} x {mechanism.count}{suffix}"


def ledger_report(charges: Iterable[Charge]) -> list[dict[str, Any]]:
    """Charges grouped per silo, then per job, in ledger order, with the cumulative epsilons after each round.

    One dict per silo: ``silo``, ``epsilon_lifetime`` (after its last charge), and ``jobs``,
    each with ``job``, ``accountant``, ``delta``, ``epsilon`` (after its last round) and
    ``rounds`` (round, seq, mechanism, epsilon_job, epsilon_lifetime, acknowledged, digest).
    """
    silos: dict[str, dict[str, Any]] = {}
    for charge in charges:
        silo = silos.setdefault(charge.silo, {"silo": charge.silo, "epsilon_lifetime": 0.0, "jobs": {}})
        silo["epsilon_lifetime"] = charge.epsilon_lifetime
        job = silo["jobs"].setdefault(
            charge.job, {"job": charge.job, "accountant": charge.accountant, "delta": charge.delta, "rounds": []}
        )
        job["epsilon"] = charge.epsilon_job
        job["rounds"].append(
            {
                "round": charge.round,
                "seq": charge.seq,
                "mechanism": charge.mechanism.to_json(),
                "epsilon_job": charge.epsilon_job,
                "epsilon_lifetime": charge.epsilon_lifetime,
                "acknowledged": charge.acknowledged_at is not None,
                "digest": charge.digest,
            }
        )
    return [silo | {"jobs": list(silo["jobs"].values())} for silo in silos.values()]


def ledger_table(charges: Iterable[Charge], *, title: str = "privacy ledger") -> Table:
    """One line per charge: silo, job, round, mechanism, the cumulative epsilons, and whether the round completed."""
    table = Table(title=title)
    for column in ("seq", "silo", "job", "round", "mechanism", "accountant", "delta", "eps job", "eps lifetime", "ack"):
        table.add_column(column, overflow="fold", justify="right" if column.startswith(("eps", "seq")) else "left")
    for charge in charges:
        table.add_row(
            str(charge.seq),
            charge.silo,
            charge.job,
            str(charge.round),
            describe_mechanism(charge.mechanism),
            charge.accountant,
            f"{charge.delta:g}",
            f"{charge.epsilon_job:.4g}",
            f"{charge.epsilon_lifetime:.4g}",
            "[green]yes[/]" if charge.acknowledged_at is not None else "[yellow]pending[/]",
        )
    return table
