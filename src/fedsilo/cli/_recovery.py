"""``fedsilo models rollback`` and ``fedsilo unlearn``: go back to an earlier round of a local run, or forget a silo.

The work is ``fedsilo.runner.rollback`` / ``unlearn``; this module parses, prints the report
(a table of the discarded rounds, or ``--json``) and, unless ``--no-retrain``, resumes the
run from the kept checkpoint as ``fedsilo run --resume`` would. Exit codes: 0 done, 2 a
bad run directory, round or silo (nothing changed), others as ``fedsilo run``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fedsilo.runner import RecoveryError, RecoveryReport, rollback, unlearn

from ._exit import EXIT_OK, EXIT_USAGE
from ._run import add_restart_option, resume_run


def recovery_table(report: RecoveryReport) -> Table:
    """The discarded rounds of a rollback or unlearning, one row each."""
    what = f"forgetting {', '.join(report.forgotten)}" if report.forgotten else "rollback"
    table = Table(
        title=f"{report.job}: {what}, back to round {report.to_round} (from {report.from_round})",
        caption=f"reason: {report.reason}; audit head {report.audit_head.seq} {report.audit_head.hash[:23]}",
    )
    for column in ("discarded round", "updates taken", "update digests", "model"):
        table.add_column(column)
    for row in report.discarded:
        table.add_row(
            str(row.round),
            ", ".join(row.participants),
            "\n".join(f"{silo}: {digest[:23]}" for silo, digest in row.update_digests.items()),
            row.model_digest[:23],
        )
    return table


def _handler(operation: Callable[[argparse.Namespace], RecoveryReport]) -> Callable[[argparse.Namespace], int]:
    """A recovery command: ``operation`` on the parsed arguments, its report, then (unless ``--no-retrain``) the resumed run."""

    def handle(args: argparse.Namespace) -> int:
        try:
            report = operation(args)
        except RecoveryError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
        if args.json:
            sys.stdout.write(report.canonical_bytes().decode() + "\n")
        else:
            Console().print(recovery_table(report))
        if args.no_retrain:
            return EXIT_OK
        return resume_run(args.run_dir, args)

    return handle


def _add(actions: Any, name: str, help_text: str, operation: Callable[[argparse.Namespace], RecoveryReport]) -> Any:
    """The parser of one recovery command, with the arguments every one takes; the caller adds its own."""
    parser = actions.add_parser(name, help=help_text)
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run directory 'fedsilo run' printed")
    parser.add_argument("--reason", required=True, help="why (recorded in the audit log and the report)")
    parser.add_argument("--no-retrain", action="store_true", help="only record and discard; resume later")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument("--no-isolation", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-baseline", action="store_true", help="skip the centralized baseline when retraining")
    parser.add_argument("--plot", type=Path, help=argparse.SUPPRESS)
    add_restart_option(parser)
    parser.set_defaults(handler=_handler(operation))
    return parser


def register_rollback(models: Any) -> None:
    """Add ``models rollback`` to the ``models`` command's actions."""
    parser = _add(
        models,
        "rollback",
        "go back to round N's model of a local run and retrain from it",
        lambda args: rollback(args.run_dir, args.to_round, args.reason),
    )
    parser.add_argument("--to-round", type=int, required=True, metavar="N", help="the checkpointed round to keep")


def register(commands: Any) -> None:
    """Add ``unlearn``."""
    parser = _add(
        commands,
        "unlearn",
        "forget a silo: retrain from the newest checkpoint holding none of its updates, without it",
        lambda args: unlearn(args.run_dir, args.silo, args.reason),
    )
    parser.add_argument("--silo", required=True, help="the silo to forget")
