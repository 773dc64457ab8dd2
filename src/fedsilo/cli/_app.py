"""The ``fedsilo`` command line: argument parsing and exit codes; each command is a module.

Exit codes (also in ``fedsilo --help``): 0 success; 1 the job ran and failed (quorum lost,
too few survivors) or a verification found tampering; 2 bad usage or an invalid manifest,
nothing started; 3 the environment failed (a process or port could not be started).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from fedsilo import __version__
from fedsilo.launch import Terminated, exit_if_terminated

from . import _audit, _cluster, _identity, _ledger, _models, _processes, _recovery, _run, _stats
from ._exit import EXIT_FAILED

Command = Callable[[argparse.Namespace], int]

_EPILOG = """exit codes: 0 success; 1 the job failed or verification found a problem;
2 bad usage or invalid manifest (nothing was started); 3 environment error."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedsilo",
        description="Cross-silo federated learning: signed, policy-gated, securely aggregated updates.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fedsilo {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (_run, _stats, _models, _recovery, _audit, _ledger, _identity, _processes, _cluster):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run a command; returns the exit code (after a SIGTERM, exits with it)."""
    parser = _parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Command = args.handler
    try:
        code = handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_FAILED
    except Terminated:
        # SIGTERM (a deleted pod) before the command was done: a stop, not a failure to report.
        print("terminated", file=sys.stderr)
        code = EXIT_FAILED
    return exit_if_terminated(code)
