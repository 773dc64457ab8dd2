"""Kill a local run with SIGKILL at a chosen phase of a chosen round: the resume tests' and benchmark's hub crash.

Run as a process of its own (the kill takes the in-process aggregator and, through their
parent-death signal, the silos' processes with it)::

    python -m fedsilo_testing.crash MANIFEST --workdir RUN --registry REG --ledgers LEDGERS \
        --round 2 --phase upload

then resume with ``fedsilo run --resume RUN``, or kill the resumed run too at another phase::

    python -m fedsilo_testing.crash --resume RUN --round 2 --phase unmask

so one chain of runs dies at every phase, each resumed from the checkpoint the previous kill
left (the resume tests' cheap way to cover all phases: no second whole run per phase). The phases are the points of a round where
the hub holds state a checkpoint must not lose or double-count:

- ``keys``: key agreement, the hub has every silo's key advertisement and is about to answer;
- ``upload``: the first update of the round was admitted (and, in a DP job, charged by both
  ledgers), others are still on their way;
- ``unmask``: the survivors' shares are in and the sum is about to be unmasked;
- ``registry``: the round's model file is written, its lineage is not;
- ``checkpoint``: the round is in the registry, its checkpoint's tensors are written but the
  checkpoint's JSON (its commit marker) is not.

The hooks wrap the aggregator's own methods in this process only; nothing in ``fedsilo``
knows about them.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import fedsilo.aggregator._checkpoint as checkpoint_module
import fedsilo.registry._local as registry_module
from fedsilo.aggregator import RoundSummary
from fedsilo.aggregator._masked import MaskedAggregation
from fedsilo.api import Manifest, load_manifest
from fedsilo.protocol import PolicyVerdict
from fedsilo.runner import LocalRun, RunOptions, read_run_state


class Phase(StrEnum):
    """Where in the round the hub dies."""

    KEYS = "keys"
    UPLOAD = "upload"
    UNMASK = "unmask"
    REGISTRY = "registry"
    CHECKPOINT = "checkpoint"


def die() -> None:
    """SIGKILL this process: no handler, no ``finally``, no flush."""
    os.kill(os.getpid(), signal.SIGKILL)


class CrashObserver:
    """Tracks the open round and kills the process at ``phase`` of round ``round_number``."""

    def __init__(self, phase: Phase, round_number: int) -> None:
        self.phase = phase
        self.round_number = round_number
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
            die()

    def round_finished(self, summary: RoundSummary) -> None:
        """Nothing to do: the registry and checkpoint phases hook their writes."""


def _before(owner: Any, name: str, when: Callable[..., bool]) -> None:
    """Make ``owner.name`` die first whenever ``when`` (given the call's arguments) holds."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs):
            die()
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def arm(phase: Phase, round_number: int) -> CrashObserver:
    """Install the hooks; the observer to pass to the run."""
    observer = CrashObserver(phase, round_number)
    _before(MaskedAggregation, "setup_step", lambda *a, **k: observer.armed(Phase.KEYS))
    _before(MaskedAggregation, "unmask", lambda *a, **k: observer.armed(Phase.UNMASK))
    stem = f"round-{round_number:05d}"
    _before(
        registry_module,
        "_atomic_write",
        lambda path, data: observer.phase is Phase.REGISTRY and path.name == f"{stem}.json",
    )
    _before(
        checkpoint_module,
        "_write_durably",
        lambda path, data: observer.phase is Phase.CHECKPOINT and path.name == f"{stem}.json",
    )
    return observer


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
    """Run the manifest (or resume the run) until the armed phase kills it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path, nargs="?")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--registry", type=Path)
    parser.add_argument("--ledgers", type=Path)
    parser.add_argument("--resume", type=Path, metavar="RUN", help="resume this run (killed before) instead")
    parser.add_argument("--round", type=int, required=True)
    parser.add_argument("--phase", type=Phase, choices=list(Phase), required=True)
    args = parser.parse_args()
    manifest, options = _options(args)
    observer = arm(args.phase, args.round)
    report = LocalRun(manifest, options, observer).execute()
    raise SystemExit(f"the run ended ({report.status}) without reaching {args.phase} of round {args.round}")


if __name__ == "__main__":
    main()
