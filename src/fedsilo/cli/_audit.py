"""``fedsilo audit verify|show``: what auditors run against an audit log, offline.

Both open the log read-only. ``verify`` exits 0 when the log is intact, 1 with a
``TAMPERED: <kind> at record N, line M: ...`` verdict when it is not (a malformed line
included: a duplicate key, NaN, deep nesting or a non-UTF-8 byte is a verdict, not a
crash), and 2 for a bad ``--key`` or ``--head``. ``--head`` checks the log against the
signed head published outside it (the FederatedJob's ``status.evidence.auditHead``, or a
model's lineage), which catches a log cut back to an earlier signed close.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from fedsilo.audit import (
    AuditVerificationError,
    SignedHead,
    decisions_table,
    read_decisions,
    verify_audit_log,
)
from fedsilo.identity import SignatureError, VerifyKey
from fedsilo.protocol import MessageError

from ._exit import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def read_key(text: str) -> VerifyKey:
    """A public key given inline (base64) or as a file holding it."""
    path = Path(text)
    return VerifyKey.from_base64(path.read_text().strip() if path.is_file() else text)


def read_head(text: str | None) -> SignedHead | None:
    """A published head given inline (JSON) or as a file holding it; ``MessageError`` names what is wrong."""
    return None if text is None else SignedHead.load(text)


def read_key_and_head(keys: list[str], head: str | None) -> tuple[list[VerifyKey], SignedHead | None] | None:
    """The verifiers' ``--key`` and ``--head`` options; None (the problem printed) if one is unusable."""
    try:
        verify_keys = [read_key(text) for text in keys]
    except SignatureError as error:
        print(f"error: --key: {error.reason}", file=sys.stderr)
        return None
    try:
        return verify_keys, read_head(head)
    except (MessageError, OSError) as error:
        print(f"error: --head: {error}", file=sys.stderr)
        return None


def _verify(args: argparse.Namespace) -> int:
    options = read_key_and_head([args.key], args.head)
    if options is None:
        return EXIT_USAGE
    (key,), head = options
    if not args.log.is_file():
        print(f"error: no audit log at {args.log}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = verify_audit_log(args.log, key, published=head)
    except AuditVerificationError as error:
        print(f"TAMPERED: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"OK: {report.records} records ({report.decisions} decisions, {report.denied} denied, "
        f"{report.checkpoints} signed checkpoints) for job(s) {', '.join(sorted(report.jobs)) or '-'}; "
        f"signed by {key.fingerprint()}"
        + (f"; holds the published head (record {head.seq})" if head is not None else "")
    )
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    try:
        rows = read_decisions(args.log, job=args.job, silo=args.silo, decision=args.decision)
    except AuditVerificationError as error:
        print(f"TAMPERED: {error}", file=sys.stderr)
        return EXIT_FAILED
    if args.jsonl:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return EXIT_OK
    Console(width=200).print(decisions_table(rows, title=f"policy decisions in {args.log}"))
    return EXIT_OK


def register(commands: Any) -> None:
    """Add ``audit verify`` and ``audit show``."""
    audit = commands.add_parser("audit", help="verify or read an audit log of policy decisions")
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = sub.add_parser("verify", help="check the hash chain and the signed checkpoints")
    verify.add_argument("log", type=Path)
    verify.add_argument("--key", required=True, help="the aggregator's Ed25519 public key (base64, or a file)")
    verify.add_argument(
        "--head",
        help="the signed head published outside the log (JSON, or a file): catches a log cut back to an earlier close",
    )
    verify.set_defaults(handler=_verify)
    show = sub.add_parser("show", help="decisions as a table, or JSON lines")
    show.add_argument("log", type=Path)
    show.add_argument("--job")
    show.add_argument("--silo")
    show.add_argument("--decision", choices=("allow", "deny"))
    show.add_argument("--jsonl", action="store_true", help="one JSON record per line")
    show.set_defaults(handler=_show)
