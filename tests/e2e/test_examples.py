"""Every example manifest validates, and the user-model example runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fedsilo.api import load_manifest

from .conftest import ROOT

EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_manifest_is_valid(path: Path) -> None:
    load_manifest(path)


def test_the_custom_model_example_trains_a_user_model(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedsilo",
            "run",
            "examples/custom_model/job.yaml",
            "--json",
            "--no-baseline",
            "--workdir",
            str(tmp_path / "run"),
            "--registry",
            str(tmp_path / "registry"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout)
    assert report["final_accuracy"] > 0.9
