"""Kill a local run's hub with SIGKILL at chosen phases of chosen rounds: the resume tests' and benchmark's crashes.

A local run's hub is a child process of the runner (``fedsilo.runner``'s supervised hub).
:class:`HubKills` is its ``hub_setup``: in the N-th hub process of a run it arms the N-th
kill, so one run dies at every phase in turn, each death restarted by the runner from the
newest checkpoint while the silos stay up. A kill aimed at the ``runner`` takes the whole
run down instead (the runner first, then the hub; the silos follow their parent), which
``fedsilo run --resume RUN`` then resumes. As a process of its own::

    python -m fedsilo_testing.crash MANIFEST --workdir RUN --registry REG --ledgers LEDGERS \
        --kill 1:keys --kill 2:upload --kill 2:unmask:runner

or, for a run killed before, ``python -m fedsilo_testing.crash --resume RUN --kill ...``. It
exits with the runner's SIGKILL, or with the report's JSON when the run ended. The phases
are the points of a round where the hub holds state a checkpoint must not lose or
double-count:

- ``keys``: key agreement, the hub has every silo's key advertisement and is about to answer;
- ``upload``: the first update of the round was admitted (and, in a DP job, charged by both
  ledgers), others are still on their way;
- ``unmask``: the survivors' shares are in and the sum is about to be unmasked;
- ``registry``: the round's model file is written, its lineage is not;
- ``checkpoint``: the round is in the registry, its checkpoint's tensors are written but the
  checkpoint's JSON (its commit marker) is not;
- ``statistics`` (round 0: before training, in a job with federated preprocessing): the
  statistics phase's first pass is unmasked (the hub knows the moments) and its second is
  about to open.

The hooks wrap the aggregator's own methods in the hub process only; nothing in ``fedsilo``
knows about them.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import fedsilo.aggregator._checkpoint as checkpoint_module
import fedsilo.registry._local as registry_module
from fedsilo.aggregator import RoundObserver, RoundSummary, StatisticsPhase
from fedsilo.aggregator._masked import MaskedAggregation
from fedsilo.api import Manifest, load_manifest
from fedsilo.protocol import PolicyVerdict
from fedsilo.runner import LocalRun, RunOptions, read_run_state

from .local_runs import LEDGERS_DIR, REGISTRY_DIR, RUN_DIR


class Phase(StrEnum):
    """Where in the round the hub dies."""

    KEYS = "keys"
    UPLOAD = "upload"
    UNMASK = "unmask"
    REGISTRY = "registry"
    CHECKPOINT = "checkpoint"
    STATISTICS = "statistics"


@dataclass(frozen=True)
class Kill:
    """One crash: at ``phase`` of round ``round``, SIGKILL the hub process (or the whole ``runner``)."""

    round: int
    phase: Phase
    runner: bool = False

    @classmethod
    def parse(cls, text: str) -> Kill:
        """``ROUND:PHASE`` or ``ROUND:PHASE:runner``."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "runner") or not parts[0].isdigit():
            raise argparse.ArgumentTypeError(f"--kill takes ROUND:PHASE or ROUND:PHASE:runner, not {text!r}")
        try:
            phase = Phase(parts[1])
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--kill: no phase {parts[1]!r}; one of {[p.value for p in Phase]}"
            ) from None
        return cls(int(parts[0]), phase, len(parts) == 3)

    def argument(self) -> str:
        """This kill as ``--kill`` takes it (``parse``'s inverse)."""
        return f"--kill={self.round}:{self.phase.value}{':runner' if self.runner else ''}"


def die(runner: bool = False) -> None:
    """SIGKILL this process (the runner first, if ``runner``): no handler, no ``finally``, no flush."""
    if runner:
        os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


class CrashObserver:
    """Tracks the open round and kills the process at ``phase`` of round ``round_number``."""

    def __init__(self, phase: Phase, round_number: int, runner: bool = False) -> None:
        self.phase = phase
        self.round_number = round_number
        self.runner = runner
        self.current = 0

    def armed(self, phase: Phase) -> bool:
        """Whether the process is to die at ``phase`` now."""
        return self.phase is phase and self.current == self.round_number

    def round_started(self, round_number: int, participants: tuple[str, ...]) -> None:
        """Remember the open round."""
        self.current = round_number

    def update_decided(self, round_number: int, silo: str, verdict: PolicyVerdict) -> None:
        """Die at the first admitted update of the armed round (``upload``)."""
        if verdict.accepted and self.armed(Phase.UPLOAD):
            die(self.runner)

    def round_finished(self, summary: RoundSummary) -> None:
        """Nothing to do: the registry and checkpoint phases hook their writes."""


def _before(owner: Any, name: str, when: Callable[..., bool], runner: bool) -> None:
    """Make ``owner.name`` die first whenever ``when`` (given the call's arguments) holds."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs):
            die(runner)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def arm(kill: Kill) -> CrashObserver:
    """Install the hooks in this (hub) process; the observer to pass to its hub."""
    phase, round_number = kill.phase, kill.round
    observer = CrashObserver(phase, round_number, kill.runner)
    _before(MaskedAggregation, "setup_step", lambda *a, **k: observer.armed(Phase.KEYS), kill.runner)
    _before(MaskedAggregation, "unmask", lambda *a, **k: observer.armed(Phase.UNMASK), kill.runner)
    # StatisticsPhase._start_pass(self, pass_number, participants): the second pass opens.
    _before(StatisticsPhase, "_start_pass", lambda *a, **k: phase is Phase.STATISTICS and a[1] == 2, kill.runner)
    stem = f"round-{round_number:05d}"
    _before(
        registry_module,
        "_atomic_write",
        lambda path, data: observer.phase is Phase.REGISTRY and path.name == f"{stem}.json",
        kill.runner,
    )
    _before(
        checkpoint_module,
        "_write_durably",
        lambda path, data: observer.phase is Phase.CHECKPOINT and path.name == f"{stem}.json",
        kill.runner,
    )
    return observer


@dataclass(frozen=True)
class HubKills:
    """A run's ``hub_setup``: the N-th hub process of the run (0 first) dies by ``kills[N]``; later ones live."""

    kills: tuple[Kill, ...]

    def __call__(self, attempt: int) -> RoundObserver | None:
        """Arm this hub process's kill, if it has one."""
        return arm(self.kills[attempt]) if attempt < len(self.kills) else None


def crash_command(manifest: Path, folder: Path, kills: Sequence[Kill], *extra: str) -> list[str]:
    """The command that runs ``manifest`` in ``folder`` (``local_runs.run_options``'s layout) dying at ``kills``."""
    where = ("--workdir", folder / RUN_DIR, "--registry", folder / REGISTRY_DIR, "--ledgers", folder / LEDGERS_DIR)
    return [
        sys.executable,
        "-m",
        "fedsilo_testing.crash",
        str(manifest),
        *map(str, where),
        *(kill.argument() for kill in kills),
        *extra,
    ]


def _options(args: argparse.Namespace) -> tuple[Manifest, RunOptions]:
    """The manifest and options of a new run, or of the run ``--resume`` names (as ``fedsilo run --resume``)."""
    if args.resume is not None:
        state = read_run_state(args.resume)
        options = RunOptions(
            manifest_path=Path(state.manifest),
            workdir=args.resume,
            registry=Path(state.registry),
            isolate=state.isolate,
            baseline=False,
            ledgers=Path(state.ledgers),
            resume=True,
        )
        return state.load_manifest(), options
    if args.manifest is None or args.workdir is None or args.registry is None or args.ledgers is None:
        raise SystemExit("give MANIFEST --workdir --registry --ledgers, or --resume RUN")
    options = RunOptions(
        manifest_path=args.manifest,
        workdir=args.workdir,
        registry=args.registry,
        ledgers=args.ledgers,
        baseline=False,
    )
    return load_manifest(args.manifest), options


def main() -> None:
    """Run the manifest (or resume the run) with its hub killed at each ``--kill``; the report's JSON if it ends."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path, nargs="?")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--registry", type=Path)
    parser.add_argument("--ledgers", type=Path)
    parser.add_argument("--resume", type=Path, metavar="RUN", help="resume this run (killed before) instead")
    parser.add_argument("--kill", type=Kill.parse, action="append", required=True, metavar="ROUND:PHASE[:runner]")
    parser.add_argument("--max-hub-restarts", type=int, help="default: one restart per --kill")
    parser.add_argument("--metrics-port", type=int, help="serve the hub's /metrics here (0: any free port)")
    args = parser.parse_args()
    # As 'fedsilo -v': the runner's and its hub processes' INFO lines on stderr, for the test's failure messages.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    manifest, options = _options(args)
    kills = tuple(args.kill)
    restarts = len(kills) if args.max_hub_restarts is None else args.max_hub_restarts
    options = dataclasses.replace(options, max_hub_restarts=restarts, metrics_port=args.metrics_port)
    report = LocalRun(manifest, options, hub_setup=HubKills(kills)).execute()
    print(report.to_json())


if __name__ == "__main__":
    main()
