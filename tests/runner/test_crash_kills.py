"""The crash driver's ``--kill`` takes ``ROUND:PHASE[:runner]`` and refuses anything else, naming the form.

``Kill.argument`` writes what ``Kill.parse`` reads, so the tests and the benchmark build the
driver's command line from ``Kill`` values and never spell the flag twice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from fedsilo_testing.crash import Kill, Phase, crash_command


@pytest.mark.parametrize("kill", [Kill(1, Phase.KEYS), Kill(2, Phase.CHECKPOINT, runner=True)])
def test_a_kill_reads_back_what_it_writes(kill: Kill) -> None:
    assert Kill.parse(kill.argument().removeprefix("--kill=")) == kill


@pytest.mark.parametrize("text", ["1", "x:keys", "1:keys:hub", "1:nowhere", "1:keys:runner:again"])
def test_a_malformed_kill_is_refused_naming_the_form(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"--kill"):
        Kill.parse(text)


def test_the_crash_command_runs_in_the_run_options_folders(tmp_path: Path) -> None:
    command = crash_command(tmp_path / "job.yaml", tmp_path, [Kill(2, Phase.UPLOAD)], "--max-hub-restarts=1")
    assert command[command.index("--workdir") + 1] == str(tmp_path / "run")
    assert command[command.index("--registry") + 1] == str(tmp_path / "registry")
    assert command[command.index("--ledgers") + 1] == str(tmp_path / "ledgers")
    assert command[-2:] == ["--kill=2:upload", "--max-hub-restarts=1"]
