"""``fedsilo models list|show``: what the model registry holds, and where each model came from."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fedsilo.registry import LocalRegistry, RegistryError

from ._exit import EXIT_FAILED, EXIT_OK


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


def register(commands: Any) -> None:
    """Add ``models list`` and ``models show``."""
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
    for parser in (listing, show):
        parser.add_argument("--registry", type=Path, default=Path("runs/registry"), help="registry folder")
