"""What ``fedsilo audit show`` and ``fedsilo audit verify`` print: filtered rows and rich tables.

The CLI calls these; they read the log as it is and do not verify the chain
(``verify_audit_log`` does), but every line is parsed strictly and typed
(``parse_line``): a tampered line is refused with ``AuditVerificationError`` naming the
line, never shown as something else. Rows are the records themselves, JSON-able, for
``--jsonl``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from rich.table import Table

from ._chain import DecisionRecord, parse_line
from ._heads import TamperedError
from ._verify import AuditVerificationError, VerifyReport, read_lines


def read_decisions(
    path: Path,
    *,
    job: str | None = None,
    silo: str | None = None,
    decision: Literal["allow", "deny"] | None = None,
) -> list[dict[str, Any]]:
    """The decision records of ``path`` in file order, optionally only one job's, silo's or outcome's."""
    rows = []
    for number, line in enumerate(read_lines(path), start=1):
        try:
            document, record = parse_line(line, number)
        except TamperedError as error:
            raise AuditVerificationError.at_line(error, None, number) from None
        if not isinstance(record, DecisionRecord):
            continue
        if (job and record.job != job) or (silo and record.silo != silo):
            continue
        if decision and record.decision != decision:
            continue
        rows.append(document)
    return rows


def decisions_table(rows: Sequence[Mapping[str, Any]], *, title: str = "policy decisions") -> Table:
    """One line per decision: who, when, the outcome in colour, every reason, the policy revision."""
    table = Table(title=title)
    for column in ("seq", "time (UTC)", "job", "round", "silo", "decision", "reasons", "policy", "engine"):
        table.add_column(column, overflow="fold")
    for row in rows:
        allowed = row.get("decision") == "allow"
        table.add_row(
            str(row.get("seq")),
            str(row.get("time", ""))[:19].replace("T", " "),
            str(row.get("job")),
            str(row.get("round")),
            str(row.get("silo")),
            "[green]allow[/]" if allowed else "[red]deny[/]",
            "\n".join(str(r) for r in row.get("reasons", ())) or "-",
            str(row.get("policy_revision") or "-"),
            str(row.get("engine", "-")),
        )
    return table


def report_table(report: VerifyReport) -> Table:
    """A verified log at a glance: counts, time span, signer, and the chain head to anchor."""
    table = Table(title="audit log verified", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("records", str(report.records))
    table.add_row("decisions", f"{report.decisions} ({report.denied} denied)")
    table.add_row("signed checkpoints", str(report.checkpoints))
    table.add_row("jobs", ", ".join(report.jobs) or "-")
    table.add_row("first decision", report.first_time or "-")
    table.add_row("last decision", report.last_time or "-")
    table.add_row("signed by", report.signer)
    table.add_row("chain head", f"record {report.head_seq}: {report.head_hash}")
    return table
