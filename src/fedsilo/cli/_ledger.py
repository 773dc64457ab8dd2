"""``fedsilo ledger show|verify|agree``: a privacy ledger's charges, its chain and signatures, and agreement.

``agree`` says whether the hub's and a silo's ledger agree on that silo's charges.

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

``agree SILO_LEDGER --silo NAME`` compares a silo's own ledger with the hub's
(``compare_ledgers``): exit 0 when every round both charged holds the same mechanism and
epsilon and the hub charged nothing the silo did not, 1 naming the rounds that differ, 2 for
a missing file. Rounds only the silo charged (sent, never admitted) are listed, not failed.
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
    compare_ledgers,
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


def _agree(args: argparse.Namespace) -> int:
    if not (_exists(args.hub) and _exists(args.ledger)):
        return EXIT_USAGE
    try:
        with PrivacyLedger(args.hub, read_only=True) as hub, PrivacyLedger(args.ledger, read_only=True) as own:
            agreement = compare_ledgers(hub, own, args.silo, args.job)
    except LedgerIntegrityError as error:
        print(f"TAMPERED: {error}", file=sys.stderr)
        return EXIT_FAILED
    if agreement.only_silo:
        print(f"{args.silo}: charged by the silo only (sent, never admitted): {', '.join(agreement.only_silo)}")
    if not agreement.agree:
        for what, rounds in (
            ("rounds that differ", agreement.differing),
            ("rounds charged by the hub only", agreement.only_hub),
        ):
            if rounds:
                print(f"{args.silo}: DISAGREE: {what}: {', '.join(rounds)}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.silo}: the hub's ledger {args.hub} and {args.ledger} agree")
    return EXIT_OK


def register(commands: Any) -> None:
    """Add ``ledger show``, ``ledger verify`` and ``ledger agree``."""
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
    agree = sub.add_parser("agree", help="whether the hub's ledger and a silo's agree on the silo's charges")
    agree.add_argument("ledger", type=Path, help="the silo's own ledger (e.g. runs/privacy/silos/<silo>.sqlite)")
    agree.add_argument("--silo", required=True, help="the silo whose charges to compare")
    agree.add_argument("--hub", type=Path, default=DEFAULT_LEDGER, help=f"the hub's ledger (default {DEFAULT_LEDGER})")
    agree.add_argument("--job", help="only this job (as the ledgers name it: <job>/<run id>)")
    agree.set_defaults(handler=_agree)
