"""``fedsilo ledger show|verify``: what a privacy ledger holds, and whether its chain is intact and signed.

A local run keeps the hub's ledger in ``runs/privacy/hub.sqlite`` (signed with
``runs/privacy/aggregator-key.pem``) and each silo's in ``runs/privacy/silos/<silo>.sqlite``
(signed with the silo's identity key); a sidecar's is the file its ``--ledger`` names.
Reading never writes: both commands open the file read-only (``mode=ro``), so its bytes
and its mtime stay as they were.

``verify`` exits 0 when the chain is intact (and, with ``--key``, every row is covered by a
signature of that key), 1 with a ``TAMPERED: <kind> at privacy ledger row N: ...`` verdict,
and 2 for a missing file or a bad ``--key``/``--head``. ``--head`` checks the ledger against
the signed head published outside it (``status.evidence.ledgerHead`` of the FederatedJob),
which catches a ledger cut back to an earlier signed row.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from fedsilo.privacy.ledger import (
    LedgerIntegrityError,
    PrivacyLedger,
    ledger_report,
    ledger_table,
    verify_ledger,
)

from ._audit import read_key_and_head
from ._exit import EXIT_FAILED, EXIT_OK, EXIT_USAGE

DEFAULT_LEDGER = Path("runs/privacy/hub.sqlite")


def _exists(path: Path) -> bool:
    if path.is_file():
        return True
    print(f"error: no ledger at {path}; pass the file (e.g. runs/privacy/silos/<silo>.sqlite)", file=sys.stderr)
    return False


def _show(args: argparse.Namespace) -> int:
    if not _exists(args.ledger):
        return EXIT_USAGE
    try:
        with PrivacyLedger(args.ledger, read_only=True) as ledger:
            charges = ledger.history(args.silo, args.job)
    except LedgerIntegrityError as error:
        print(f"{args.ledger}: TAMPERED: {error}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(ledger_report(charges), indent=2))
    else:
        Console(width=max(Console().width, 160)).print(ledger_table(charges, title=f"privacy ledger {args.ledger}"))
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    if not _exists(args.ledger):
        return EXIT_USAGE
    options = read_key_and_head(args.key, args.head)
    if options is None:
        return EXIT_USAGE
    keys, head = options
    if head is not None and not keys:
        print("error: --head is checked with the writer's key: give --key too", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = verify_ledger(args.ledger, keys or None, published=head)
    except LedgerIntegrityError as error:
        print(f"{args.ledger}: TAMPERED: {error}", file=sys.stderr)
        return EXIT_FAILED
    signed = (
        f"every row signed ({report.checkpoints} signed checkpoints) by {report.signer}"
        if keys
        else "signatures NOT checked (give --key: without it anyone can re-chain an edited ledger)"
    )
    print(f"{args.ledger}: {report.head.seq} charges, chain intact, head {report.head.digest}; {signed}")
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
    verify = sub.add_parser(
        "verify", help="recompute the hash chain and check the signatures; exit 1 at the first bad row"
    )
    verify.add_argument(
        "--key",
        action="append",
        default=[],
        help="the writer's Ed25519 public key (base64, or a file): the hub's, or the silo's identity key; "
        "repeat it for a silo whose identity was replaced",
    )
    verify.add_argument(
        "--head", help="the signed head published outside the ledger (JSON, or a file): catches a ledger cut back"
    )
    verify.set_defaults(handler=_verify)
    for parser in (show, verify):
        parser.add_argument("ledger", nargs="?", type=Path, default=DEFAULT_LEDGER, help=f"default {DEFAULT_LEDGER}")
