"""``fedsilo models list|show|verify|rollback``: what the model registry holds, where each model came from, and whether the hub sealed it.

``verify`` checks a whole registry offline with the hub's public key (``--key``; by
default the ``aggregator-key.pub`` beside the registry, the aggregator's state layout):
exit 0 when every model holds, 1 naming the job and round of each that does not, 2 for a
bad key or registry.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fedsilo.identity import SignatureError
from fedsilo.registry import LocalRegistry, RegistryError
from fedsilo.runner import AGGREGATOR_PUBLIC_KEY

from ._audit import read_key
from ._exit import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from ._recovery import register_rollback


def _list(args: argparse.Namespace) -> int:
    models = LocalRegistry(args.registry).list(args.job)
    if args.json:
        print(json.dumps([asdict(m.lineage) | {"path": m.path} for m in models], indent=2))
        return EXIT_OK
    table = Table(title=f"models in {args.registry}")
    for column in ("job", "round", "participants", "accuracy", "digest", "created"):
        table.add_column(column)
    for model in models:
        lineage = model.lineage
        accuracy = lineage.metrics.get("accuracy")
        table.add_row(
            lineage.job,
            str(lineage.round),
            ", ".join(lineage.participants),
            "-" if accuracy is None else f"{accuracy:.4f}",
            lineage.model_digest[:23],
            lineage.created[:19],
        )
    Console().print(table)
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    try:
        model = LocalRegistry(args.registry).show(args.job, args.round)
    except RegistryError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(asdict(model.lineage) | {"path": model.path}, indent=2))
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    key_text = args.key or str(args.registry.parent / AGGREGATOR_PUBLIC_KEY)
    try:
        key = read_key(key_text)
    except SignatureError as error:
        print(f"error: --key {key_text}: {error.reason}; give the hub's aggregator-key.pub", file=sys.stderr)
        return EXIT_USAGE
    if not args.registry.is_dir():
        print(f"error: --registry {args.registry}: no such folder", file=sys.stderr)
        return EXIT_USAGE
    verified, problems = LocalRegistry(args.registry).verify(key, args.job)
    for problem in problems:
        print(f"TAMPERED {problem}", file=sys.stderr)
    if not verified and not problems:
        print(f"error: no models under {args.registry}" + (f" for job {args.job}" if args.job else ""), file=sys.stderr)
        return EXIT_USAGE
    print(f"{len(verified)} models verified with {key.fingerprint()}, {len(problems)} failed")
    return EXIT_FAILED if problems else EXIT_OK


def register(commands: Any) -> None:
    """Add ``models list``, ``models show`` and ``models verify``."""
    models = commands.add_parser("models", help="list or show global models in the registry")
    sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="every stored model")
    listing.add_argument("--job", help="only this job")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)
    show = sub.add_parser("show", help="one model's lineage (the latest round by default)")
    show.add_argument("job")
    show.add_argument("--round", type=int)
    show.set_defaults(handler=_show)
    verify = sub.add_parser("verify", help="check every model's seal, digests and lineage offline")
    verify.add_argument("--job", help="only this job")
    verify.add_argument(
        "--key",
        help=f"the hub's Ed25519 public key (base64, or a file; default: {AGGREGATOR_PUBLIC_KEY} beside the registry)",
    )
    verify.set_defaults(handler=_verify)
    register_rollback(sub)
    for parser in (listing, show, verify):
        parser.add_argument("--registry", type=Path, default=Path("runs/registry"), help="registry folder")
