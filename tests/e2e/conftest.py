"""Helpers for end-to-end runs: small manifests derived from the README's quickstart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

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
