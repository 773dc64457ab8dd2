"""`fedsilo ledger verify` and `fedsilo ledger show` open the ledger read-only: its bytes, its mtime
and its folder (no journal or shared-memory file appears) are the same afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedsilo.cli import main
from fedsilo.identity import SigningKey

from .ledger_corpus import write_signed_ledger


def _state(path: Path) -> tuple[bytes, int, list[str]]:
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(p.name for p in path.parent.iterdir())


@pytest.mark.parametrize(
    "command",
    [
        ["verify", "--key", "KEY"],
        ["verify", "--key", "KEY", "--head", "HEAD"],
        ["verify"],
        ["show"],
        ["show", "--json"],
    ],
)
def test_reading_a_ledger_changes_nothing(command: list[str], tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "ledgers" / "hub.sqlite"
    head = write_signed_ledger(path, key)
    (tmp_path / "head.json").write_bytes(head.canonical_bytes())
    # An old mtime, so a write within the same clock tick could not hide.
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = _state(path)
    arguments = [{"KEY": key.public_key.to_base64(), "HEAD": str(tmp_path / "head.json")}.get(a, a) for a in command]
    assert main(["ledger", arguments[0], str(path), *arguments[1:]]) == 0
    assert _state(path) == before
