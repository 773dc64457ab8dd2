"""Helpers for end-to-end runs: small manifests derived from the README's quickstart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsilo.aggregator import RoundSummary
from fedsilo.protocol import PolicyVerdict
from fedsilo.runner import LocalRun

ROOT = Path(__file__).parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"


def quick_manifest(tmp_path: Path, **spec_changes: Any) -> Path:
    """The quickstart, made fast (few rounds, short timeouts), with ``spec`` fields replaced."""
    documents = list(yaml.safe_load_all(QUICKSTART.read_text()))
    spec = documents[0]["spec"]
    spec.update({"rounds": 3, "roundTimeoutSeconds": 40})
    spec["training"]["localEpochs"] = 1
    for key, value in spec_changes.items():
        spec[key] = value
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    return path


class KillOnRound:
    """A round observer that kills part of one silo as soon as a given round opens.

    ``kill`` is ``LocalRun.kill_silo`` (sidecar and trainer) or ``LocalRun.kill_trainer``.
    """

    def __init__(self, silo: str, round_number: int, kill: Callable[[LocalRun, str], None] = LocalRun.kill_silo) -> None:
        self.silo = silo
        self.round_number = round_number
        self.kill = kill
        self.run: LocalRun | None = None

    def round_started(self, round_number: int, participants: tuple[str, ...]) -> None:
        if round_number == self.round_number and self.run is not None:
            self.kill(self.run, self.silo)

    def update_decided(self, round_number: int, silo: str, verdict: PolicyVerdict) -> None:
        pass

    def round_finished(self, summary: RoundSummary) -> None:
        pass
