"""Local runs (``fedsilo run``'s ``LocalRun``) with a fault injected at a chosen round: the fault tests' one way to make them.

``KillOnRound`` is a round observer that kills part of one silo as a round opens;
``run_with_fault`` builds the run (workdir and registry under one folder, no baseline) and
hands it to the observer, which needs the run to reach its processes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fedsilo.aggregator import RoundSummary
from fedsilo.api import load_manifest
from fedsilo.protocol import PolicyVerdict
from fedsilo.runner import LocalRun, RunOptions

Kill = Callable[[LocalRun, str], None]


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
    """A run of ``manifest`` in ``folder`` (``run/``, ``registry/``, no baseline) that ``killer`` watches."""
    run = LocalRun(
        load_manifest(manifest),
        RunOptions(manifest_path=manifest, workdir=folder / "run", registry=folder / "registry", baseline=False),
        killer,
    )
    killer.run = run
    return run
