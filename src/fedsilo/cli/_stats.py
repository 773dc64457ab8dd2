"""``fedsilo stats MANIFEST``: a job's federated statistics on their own, before (or instead of) training.

Every silo of the manifest computes its totals and sends them masked and signed over the
aggregator's gRPC service with mutual TLS, served on loopback for the command; only their
sum reaches the hub (``fedsilo.runner.statistics_phase``). The command prints the table,
and writes ``statistics.json``, ``histograms.png``, the hub's ``audit.jsonl`` of every
decision and, when the job asks for preprocessing, the fitted ``preprocessing.json`` into
``--out``. Exit codes: 0 written; 1 the statistics could not
be aggregated (too few silos with enough records, a silo's epsilon ceiling); 2 an invalid
manifest or settings that do not fit the data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import sys
from pathlib import Path
from typing import Any

from fedsilo.datasets import DataError
from fedsilo.privacy.ledger import run_name
from fedsilo.runner import AUDIT_LOG, statistics_phase
from fedsilo.statistics import StatisticsError, statistics_table

from ._exit import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from ._manifests import manifest_or_report


def _stats(args: argparse.Namespace) -> int:
    manifest = manifest_or_report(args.manifest)
    if manifest is None:
        return EXIT_USAGE
    job = manifest.job.metadata.name
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or Path("runs") / f"{job}-stats-{stamp}"
    try:
        files = statistics_phase(
            manifest, out, run_name=run_name(job, f"stats-{stamp}-{secrets.token_hex(3)}"), ledgers=args.ledgers
        )
    except StatisticsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(statistics_table(files.statistics))
    print(f"\nstatistics: {files.json}\nhistograms: {files.plot}\naudit log: {files.json.parent / AUDIT_LOG}")
    if files.preprocessing_path is not None:
        print(
            f"preprocessing: {files.preprocessing_path} ({files.preprocessing.digest() if files.preprocessing else ''})"
        )
    return EXIT_OK


def register(commands: Any) -> None:
    """Add ``fedsilo stats``."""
    parser = commands.add_parser(
        "stats",
        help="federated statistics of a job's data (only masked totals reach the hub)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("manifest", help="the job manifest (FederatedJob and its Silos)")
    parser.add_argument("--out", type=Path, default=None, help="directory for the JSON, plot and fitted preprocessing")
    parser.add_argument(
        "--ledgers",
        type=Path,
        default=Path("runs/privacy"),
        help="directory of the privacy ledgers (silos/<silo>.sqlite and the hub's hub.sqlite), "
        "charged when spec.data.preprocessing.epsilon is set",
    )
    parser.set_defaults(handler=_stats)
