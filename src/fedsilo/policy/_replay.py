"""Re-run the policy on every input an audit log stored, and report where the outcome differs.

For auditors: ``verify_audit_log`` proves the log is what the aggregator wrote; this proves
the decisions in it are what the policy bundle (at the revision the auditor holds) says.
Decisions the gate made without an engine (``policy_unavailable``, and refusals recorded
before a policy input existed, engine ``hub``) have nothing to re-run and are counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedsilo.audit import read_decisions

from ._decision import Decision
from ._engine import UPDATE_DECISION, PolicyEngine
from ._gate import HUB_ENGINE, POLICY_UNAVAILABLE


@dataclass(frozen=True)
class ReplayMismatch:
    """One record whose stored decision the engine does not reproduce."""

    seq: int
    silo: str
    round: int
    recorded: Decision
    recomputed: Decision


@dataclass(frozen=True)
class ReplayReport:
    """How many decisions were re-run, how many could not be, and every mismatch."""

    replayed: int
    without_engine: int
    mismatches: tuple[ReplayMismatch, ...]

    @property
    def consistent(self) -> bool:
        """Every re-run decision matches the log (outcome, reasons and revision)."""
        return not self.mismatches


def replay_audit_log(path: Path, engine: PolicyEngine) -> ReplayReport:
    """Re-decide every stored input of ``path`` with ``engine``; ``PolicyUnavailable`` propagates."""
    decided, without_engine = [], 0
    for record in read_decisions(path):
        recorded = Decision(record["decision"] == "allow", tuple(record["reasons"]), record["policy_revision"])
        if recorded.codes == (POLICY_UNAVAILABLE,) or record.get("engine") == HUB_ENGINE:
            without_engine += 1
        else:
            decided.append((record, recorded))
    recomputed = engine.decide_many(UPDATE_DECISION, [record["input"] for record, _ in decided])
    mismatches = tuple(
        ReplayMismatch(record["seq"], record["silo"], record["round"], recorded, again)
        for (record, recorded), again in zip(decided, recomputed, strict=True)
        if again != recorded
    )
    return ReplayReport(len(decided), without_engine, mismatches)
