"""``fedsilo audit verify|show``: what auditors run against an audit log, offline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fedsilo.audit import AuditVerificationError, verify_audit_log
from fedsilo.identity import SignatureError, VerifyKey

from ._exit import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def _key(text: str) -> VerifyKey:
    """A public key given inline (base64) or as a file holding it."""
    path = Path(text)
    return VerifyKey.from_base64(path.read_text().strip() if path.exists() else text)


def _verify(args: argparse.Namespace) -> int:
    try:
        key = _key(args.key)
    except SignatureError as error:
        print(f"error: --key: {error.reason}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = verify_audit_log(args.log, key)
    except AuditVerificationError as error:
        print(f"TAMPERED: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"OK: {report.records} records ({report.decisions} decisions, {report.denied} denied, "
        f"{report.checkpoints} signed checkpoints) for job(s) {', '.join(sorted(report.jobs)) or '-'}; "
        f"signed by {key.fingerprint()}"
    )
    return EXIT_OK


def _rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for line in args.log.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("kind") != "decision":
            continue
        if (args.job and record["job"] != args.job) or (args.silo and record["silo"] != args.silo):
            continue
        if args.decision and record["decision"] != args.decision:
            continue
        rows.append(record)
    return rows


def _show(args: argparse.Namespace) -> int:
    rows = _rows(args)
    if args.jsonl:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return EXIT_OK
    table = Table(title=f"policy decisions in {args.log}")
    for column in ("seq", "time", "job", "round", "silo", "decision", "reasons", "policy"):
        table.add_column(column)
    for row in rows:
        style = "green" if row["decision"] == "allow" else "red"
        table.add_row(
            str(row["seq"]),
            row["time"][:19],
            row["job"],
            str(row["round"]),
            row["silo"],
            f"[{style}]{row['decision']}[/]",
            "\n".join(row["reasons"]) or "-",
            row["policy_revision"],
        )
    Console(width=200).print(table)
    return EXIT_OK


def register(commands: Any) -> None:
    """Add ``audit verify`` and ``audit show``."""
    audit = commands.add_parser("audit", help="verify or read an audit log of policy decisions")
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = sub.add_parser("verify", help="check the hash chain and the signed checkpoints")
    verify.add_argument("log", type=Path)
    verify.add_argument("--key", required=True, help="the aggregator's Ed25519 public key (base64, or a file)")
    verify.set_defaults(handler=_verify)
    show = sub.add_parser("show", help="decisions as a table, or JSON lines")
    show.add_argument("log", type=Path)
    show.add_argument("--job")
    show.add_argument("--silo")
    show.add_argument("--decision", choices=("allow", "deny"))
    show.add_argument("--jsonl", action="store_true", help="one JSON record per line")
    show.set_defaults(handler=_show)
