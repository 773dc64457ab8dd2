"""Local runs (``fedsilo run``'s ``LocalRun``) with a fault injected at a chosen round: the fault tests' one way to make them.

``run_options`` is the ONE layout of a test's or benchmark's run under a folder (``run/``,
``registry/``, ``ledgers/``, no baseline), which ``fedsilo_testing.crash.crash_command`` gives
the crash driver too. ``KillOnRound`` is a round observer that kills part of one silo as a
round opens; ``run_with_fault`` builds the run and hands it to the observer, which needs the
run to reach its processes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedsilo.aggregator import RoundSummary
from fedsilo.api import load_manifest
from fedsilo.protocol import PolicyVerdict
from fedsilo.runner import LocalRun, RunOptions

Kill = Callable[[LocalRun, str], None]

RUN_DIR, REGISTRY_DIR, LEDGERS_DIR = "run", "registry", "ledgers"


def run_options(manifest: Path, folder: Path, **changes: Any) -> RunOptions:
    """How a test or benchmark runs ``manifest`` in ``folder`` (``run/``, ``registry/``, ``ledgers/``, no baseline).

    ``changes`` replace other ``RunOptions`` fields (``metrics_port``, ``max_hub_restarts``...).
    """
    options = RunOptions(
        manifest_path=manifest,
        workdir=folder / RUN_DIR,
        registry=folder / REGISTRY_DIR,
        ledgers=folder / LEDGERS_DIR,
        baseline=False,
    )
    return dataclasses.replace(options, **changes)


class KillOnRound:
    """A round observer that kills part of one silo as soon as round ``round_number`` opens.

    ``kill`` is ``LocalRun.kill_silo`` (sidecar and trainer: a dropout the run goes on without),
    ``LocalRun.kill_trainer``, or any function of the run and the silo's name.
    """

    def __init__(self, silo: str, round_number: int, kill: Kill = LocalRun.kill_silo) -> None:
        self.silo = silo
        self.round_number = round_number
        self.kill = kill
        self.run: LocalRun | None = None

    def round_started(self, round_number: int, participants: tuple[str, ...]) -> None:
        """Kill when the chosen round opens."""
        if round_number == self.round_number and self.run is not None:
            self.kill(self.run, self.silo)

    def update_decided(self, round_number: int, silo: str, verdict: PolicyVerdict) -> None:
        """Nothing: the kill waits for its round."""

    def round_finished(self, summary: RoundSummary) -> None:
        """Nothing: the kill waits for its round."""


def run_with_fault(manifest: Path, folder: Path, killer: KillOnRound) -> LocalRun:
    """A run of ``manifest`` in ``folder`` (``run_options``) that ``killer`` watches."""
    run = LocalRun(load_manifest(manifest), run_options(manifest, folder), killer)
    killer.run = run
    return run
