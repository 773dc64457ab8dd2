"""``fedsilo ledger show|verify``: what a privacy ledger holds, and whether its chain is intact.

A local run keeps the hub's ledger in ``runs/privacy/hub.sqlite`` and each silo's in
``runs/privacy/silos/<silo>.sqlite`` (``fedsilo run --ledgers``); a sidecar's is the file
its ``--ledger`` names. Reading never writes: the file is opened as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from fedsilo.privacy.ledger import LedgerIntegrityError, PrivacyLedger, ledger_report, ledger_table

from ._exit import EXIT_FAILED, EXIT_OK, EXIT_USAGE

DEFAULT_LEDGER = Path("runs/privacy/hub.sqlite")


def _open(path: Path) -> PrivacyLedger | None:
    if not path.is_file():
        print(f"error: no ledger at {path}; pass the file (e.g. runs/privacy/silos/<silo>.sqlite)", file=sys.stderr)
        return None
    return PrivacyLedger(path)


def _show(args: argparse.Namespace) -> int:
    ledger = _open(args.ledger)
    if ledger is None:
        return EXIT_USAGE
    with ledger:
        charges = ledger.history(args.silo, args.job)
    if args.json:
        print(json.dumps(ledger_report(charges), indent=2))
    else:
        Console(width=max(Console().width, 160)).print(ledger_table(charges, title=f"privacy ledger {args.ledger}"))
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    ledger = _open(args.ledger)
    if ledger is None:
        return EXIT_USAGE
    with ledger:
        try:
            head = ledger.verify()
        except LedgerIntegrityError as error:
            print(f"{args.ledger}: TAMPERED: {error}", file=sys.stderr)
            return EXIT_FAILED
    print(f"{args.ledger}: {head.seq} charges, chain intact, head {head.digest}")
    return EXIT_OK


def register(commands: Any) -> None:
    """Add ``ledger show`` and ``ledger verify``."""
    ledger = commands.add_parser("ledger", help="show or verify a privacy (epsilon) ledger")
    sub = ledger.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="every charge: silo, job, round, mechanism, cumulative epsilon")
    show.add_argument("--silo", help="only this silo")
    show.add_argument("--job", help="only this job (as the ledger names it: <job>/<run id>)")
    show.add_argument("--json", action="store_true", help="per silo and job, as JSON")
    show.set_defaults(handler=_show)
    verify = sub.add_parser("verify", help="recompute the hash chain; exit 1 at the first broken row")
    verify.set_defaults(handler=_verify)
    for parser in (show, verify):
        parser.add_argument("ledger", nargs="?", type=Path, default=DEFAULT_LEDGER, help=f"default {DEFAULT_LEDGER}")
