"""``fedsilo run`` and ``fedsilo validate``: run a manifest locally (or resume a run), or only check it.

The run itself, its baseline, plots and ``report.json`` are :class:`fedsilo.runner.LocalRun`'s;
this module shows progress, prints the report and maps it to an exit code.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedsilo.aggregator import RoundSummary
from fedsilo.api import Manifest
from fedsilo.protocol import PolicyVerdict
from fedsilo.runner import (
    AUDIT_LOG,
    HubRestart,
    LocalRun,
    RecoveryError,
    RunOptions,
    RunReport,
    read_run_state,
    render_silo_quality,
    render_table,
)
from fedsilo.statistics import statistics_table

from ._exit import EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from ._manifests import manifest_or_report

# A hub that died more often than this in one run has a cause that restarting will not fix.
MAX_HUB_RESTARTS = 100


class _ProgressObserver:
    """A progress bar over rounds plus one line per finished round, on stderr."""

    def __init__(self, progress: Progress, total: int) -> None:
        self._progress = progress
        self._task = progress.add_task("round", total=total)
        self._printed: set[int] = set()

    def round_started(self, round_number: int, participants: tuple[str, ...]) -> None:
        self._progress.update(self._task, description=f"round {round_number} ({len(participants)} silos)")

    def update_decided(self, round_number: int, silo: str, verdict: PolicyVerdict) -> None:
        if not verdict.accepted:
            self._progress.console.print(
                f"  round {round_number}: [yellow]{silo} denied[/]: {'; '.join(verdict.reasons)}"
            )

    def hub_restarted(self, restart: HubRestart) -> None:
        after = f"after round {restart.resumed_after}" if restart.resumed_after is not None else "from its start"
        self._progress.console.print(
            f"  [yellow]hub restart {restart.restart}[/]: {restart.cause}; back in {restart.seconds_down:.1f}s, "
            f"going on {after}; the silos reconnect"
        )

    def round_finished(self, summary: RoundSummary) -> None:
        if summary.round not in self._printed:
            self._printed.add(summary.round)
            self._progress.advance(self._task)
            spent = [v.epsilon_spent for v in summary.silos.values() if v.epsilon_spent is not None]
            self._progress.console.print(
                f"  round {summary.round}: {len(summary.accepted)}/{len(summary.participants)} updates accepted "
                f"in {summary.seconds:.1f}s" + (f", epsilon spent up to {max(spent):.3f}" if spent else "")
            )
            if summary.void is not None:
                self._progress.console.print(f"  round {summary.round}: [red]void, the model stays[/]: {summary.void}")
        if summary.accuracy is not None and summary.loss is not None:
            self._progress.console.print(
                f"  round {summary.round} model: accuracy {summary.accuracy:.4f}, loss {summary.loss:.4f}"
            )


def _baseline_status(progress: Progress) -> AbstractContextManager[object]:
    # One live display at a time: the rounds' bar ends where the baseline's spinner begins.
    progress.stop()
    return progress.console.status("training the centralized baseline on the pooled data")


def _resumed(run_dir: Path, args: argparse.Namespace) -> tuple[Manifest, RunOptions]:
    """The manifest and options of the run in ``run_dir``, as its ``run.json`` recorded them."""
    state = read_run_state(run_dir)
    return state.load_manifest(), RunOptions(
        manifest_path=Path(state.manifest),
        workdir=run_dir,
        registry=Path(state.registry),
        isolate=state.isolate and not args.no_isolation,
        baseline=not args.no_baseline,
        ledgers=Path(state.ledgers),
        plot=args.plot,
        resume=True,
        max_hub_restarts=args.max_hub_restarts,
    )


def resume_run(run_dir: Path, args: argparse.Namespace) -> int:
    """Go on with the run in ``run_dir`` (``run --resume``, and after a rollback or unlearning); the exit code."""
    console = Console(stderr=True)
    try:
        manifest, options = _resumed(run_dir, args)
    except (RecoveryError, ValueError) as error:
        console.print(f"[red]error:[/] --resume {run_dir}: {error}")
        return EXIT_USAGE
    return execute(manifest, options, args, console)


def _run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    if args.resume is not None:
        if args.manifest is not None or args.workdir is not None:
            console.print(
                "[red]error:[/] --resume RUN_DIR takes the manifest and run directory from RUN_DIR/run.json; "
                "give no MANIFEST or --workdir with it"
            )
            return EXIT_USAGE
        return resume_run(args.resume, args)
    if args.manifest is None:
        console.print("[red]error:[/] give a MANIFEST to run, or --resume RUN_DIR")
        return EXIT_USAGE
    manifest = manifest_or_report(args.manifest)
    if manifest is None:
        return EXIT_USAGE
    options = RunOptions(
        manifest_path=Path(args.manifest),
        workdir=args.workdir,
        registry=args.registry,
        identity_dir=args.identity_dir,
        isolate=not args.no_isolation,
        baseline=not args.no_baseline,
        ledgers=args.ledgers,
        plot=args.plot,
        metrics_port=args.metrics_port,
        max_hub_restarts=args.max_hub_restarts,
    )
    return execute(manifest, options, args, console)


def execute(manifest: Manifest, options: RunOptions, args: argparse.Namespace, console: Console) -> int:
    """Run ``manifest`` with a progress display, print its report; the exit code (``run``, ``unlearn``)."""
    spec = manifest.job.spec
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        # A statistics-only job has no rounds to count: no bar stuck at 0/0.
        observer = None if spec.statistics_only else _ProgressObserver(progress, spec.rounds)
        run = LocalRun(manifest, options, observer)
        progress.console.print(
            f"job [bold]{manifest.job.metadata.name}[/]: {len(spec.silos)} silos, "
            + (
                "statistics only (spec.rounds 0)"
                if spec.statistics_only
                else f"{spec.rounds} rounds, {spec.aggregation.mode.value} aggregation"
            )
        )
        progress.console.print(f"trainer isolation {run.isolation.description}")
        progress.console.print(f"run directory {run.workdir}")
        try:
            report = run.execute(on_baseline=lambda: _baseline_status(progress))
        except RecoveryError as error:
            console.print(f"[red]error:[/] {error}")
            return EXIT_USAGE
        except (OSError, ValueError) as error:
            console.print(f"[red]error:[/] {error}")
            return EXIT_ENVIRONMENT
    if args.json:
        sys.stdout.write(report.to_json() + "\n")
    elif report.statistics_only:
        _print_statistics_only(run, report)
    else:
        # A pipe or log file gets the whole table rather than an 80-column squeeze.
        stdout = Console()
        wide = Console(width=max(stdout.width, 160) if not stdout.is_terminal else None)
        wide.print(render_table(report))
        if (silos := render_silo_quality(report)) is not None:
            wide.print(silos)
        print(f"plot: {report.plot}\nreport: {report.path}")
        if report.privacy_plot:
            print(f"accuracy vs epsilon: {report.privacy_plot}\nledgers: {report.ledgers} (fedsilo ledger show)")
    if report.status != "succeeded":
        console.print(f"[red]job failed:[/] {report.failure}")
        return EXIT_FAILED
    return EXIT_OK


def _print_statistics_only(run: LocalRun, report: RunReport) -> None:
    """What ``fedsilo stats`` prints, for a statistics-only job (``spec.rounds: 0``): its release, no rounds."""
    if run.statistics is not None:
        print(statistics_table(run.statistics.statistics))
        files = run.statistics
        print(f"\nstatistics: {files.json}\nhistograms: {files.plot}\naudit log: {run.workdir / AUDIT_LOG}")
        if files.preprocessing_path is not None and files.preprocessing is not None:
            print(f"preprocessing: {files.preprocessing_path} ({files.preprocessing.digest()})")
    print(f"no round was trained: a statistics-only job (spec.rounds 0)\nreport: {report.path}")


def _validate(args: argparse.Namespace) -> int:
    manifest = manifest_or_report(args.manifest)
    if manifest is None:
        return EXIT_USAGE
    print(f"{args.manifest}: FederatedJob/{manifest.job.metadata.name} with {len(manifest.silos)} silos is valid")
    return EXIT_OK


def _metrics_port(text: str) -> int:
    """A TCP port for --metrics-port, or an error naming the flag and the range."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"--metrics-port must be a port number from 0 to 65535, not {text!r}")
    return port


def _restarts(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_HUB_RESTARTS:
        raise argparse.ArgumentTypeError(
            f"--max-hub-restarts must be a whole number from 0 to {MAX_HUB_RESTARTS}, not {text!r}"
        )
    return value


def add_restart_option(parser: argparse.ArgumentParser) -> None:
    """``--max-hub-restarts``, for every command that runs a job locally (``run``, ``unlearn``, ``models rollback``)."""
    parser.add_argument(
        "--max-hub-restarts",
        type=_restarts,
        default=RunOptions.max_hub_restarts,
        metavar="N",
        help="restart a hub process that dies (from its newest checkpoint, the silos staying up) at most N times "
        f"before the job fails (default {RunOptions.max_hub_restarts})",
    )


def register(commands: Any) -> None:
    """Add ``run`` and ``validate``."""
    run = commands.add_parser("run", help="run a FederatedJob manifest locally, end to end")
    run.add_argument("manifest", nargs="?", help="YAML with one FederatedJob and its Silo objects")
    run.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="go on with the run in RUN_DIR from its last completed round (after a crash, rollback or unlearn)",
    )
    run.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    run.add_argument("--workdir", type=Path, help="run directory (default runs/<job>-<time>)")
    run.add_argument("--registry", type=Path, default=Path("runs/registry"), help="model registry folder")
    run.add_argument("--identity-dir", type=Path, help="folder with <silo>/ identities from 'fedsilo identity create'")
    run.add_argument(
        "--ledgers", type=Path, default=Path("runs/privacy"), help="privacy ledgers folder (DP jobs; kept across runs)"
    )
    run.add_argument("--plot", type=Path, help="where to write the accuracy plot (PNG)")
    run.add_argument("--no-isolation", action="store_true", help="do not put trainers in their own network namespace")
    run.add_argument("--no-baseline", action="store_true", help="skip the centralized baseline")
    run.add_argument(
        "--metrics-port",
        type=_metrics_port,
        help="serve the hub's Prometheus /metrics on 127.0.0.1:PORT while the job runs (0: any free port)",
    )
    add_restart_option(run)
    run.set_defaults(handler=_run)
    validate = commands.add_parser("validate", help="check a manifest without running it")
    validate.add_argument("manifest")
    validate.set_defaults(handler=_validate)
