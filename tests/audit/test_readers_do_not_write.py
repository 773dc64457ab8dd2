"""`fedsilo audit verify` and `fedsilo audit show` only read the log: its bytes, its mtime and its
folder are the same afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedsilo.cli import main
from fedsilo.identity import SigningKey

from .corpus import write_restarted_log


@pytest.mark.parametrize(
    "command", [["verify", "--key", "KEY"], ["verify", "--key", "KEY", "--head", "HEAD"], ["show"], ["show", "--jsonl"]]
)
def test_reading_a_log_changes_nothing(command: list[str], tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "state" / "audit.jsonl"
    path.parent.mkdir()
    head = write_restarted_log(path, key)
    (tmp_path / "head.json").write_bytes(head.canonical_bytes())
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = path.read_bytes(), path.stat().st_mtime_ns, sorted(p.name for p in path.parent.iterdir())
    arguments = [{"KEY": key.public_key.to_base64(), "HEAD": str(tmp_path / "head.json")}.get(a, a) for a in command]
    assert main(["audit", arguments[0], str(path), *arguments[1:]]) == 0
    assert (path.read_bytes(), path.stat().st_mtime_ns, sorted(p.name for p in path.parent.iterdir())) == before
