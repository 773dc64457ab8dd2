"""Hostile manifest files end in exit 2 with the field or place named, fast, never a traceback,
and before anything (run directory, keys) exists."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedsilo.cli import main

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart.yaml"


def bomb(levels: int) -> str:
    """``levels`` levels of nine aliases each: 9**levels values once expanded, a few hundred bytes written."""
    above = "".join(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, levels))
    return "  l0: &l0 [x, x, x, x, x, x, x, x, x]\n" + above


BOMB = bomb(9)

HOSTILE: dict[str, tuple[bytes, str]] = {
    "an alias bomb under status": (
        (QUICKSTART.read_text() + "status:\n" + BOMB).encode(),
        "uses more than 64 aliases",
    ),
    "a bomb within the alias count": (
        (QUICKSTART.read_text() + "status:\n" + bomb(7)).encode(),
        "anchors and aliases multiply them",
    ),
    "an alias bomb in a spec": (
        QUICKSTART.read_text().replace("spec:\n", "spec:\n  bomb:\n" + BOMB.replace("  l", "    l"), 1).encode(),
        "aliases",
    ),
    "a duplicate key": (
        QUICKSTART.read_text().replace("  rounds: 15\n", "  rounds: 15\n  rounds: 1500\n", 1).encode(),
        "repeats the key 'rounds'",
    ),
    "metadata as a list": (
        QUICKSTART.read_text().replace("  name: quickstart\n", "  - quickstart\n", 1).encode(),
        "metadata: Input should be a valid dictionary",
    ),
    "metadata as a string": (
        QUICKSTART.read_text().replace("metadata:\n  name: quickstart\n", "metadata: quickstart\n", 1).encode(),
        "metadata: Input should be a valid dictionary",
    ),
    "a byte that is not UTF-8": (
        QUICKSTART.read_bytes().replace(b"name: quickstart", b"name: quick\xffstart", 1),
        "is not UTF-8: byte 0xff",
    ),
    "deep nesting": (
        QUICKSTART.read_text().replace("  rounds: 15\n", "  rounds: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
        "nests collections more than",
    ),
    "rounds as a quoted number": (
        QUICKSTART.read_text().replace("rounds: 15", 'rounds: "15"', 1).encode(),
        "spec.rounds: Input should be a valid integer",
    ),
    "rounds as a boolean": (
        QUICKSTART.read_text().replace("rounds: 15", "rounds: true", 1).encode(),
        "spec.rounds: Input should be a valid integer",
    ),
    "an integer of 5000 digits": (
        QUICKSTART.read_text().replace("rounds: 15", "rounds: " + "9" * 5000, 1).encode(),
        "holds an integer of 5000 characters",
    ),
    "a tagged scalar PyYAML cannot construct": (
        QUICKSTART.read_text().replace("seed: 7", "seed: !!bool maybe", 1).encode(),
        "holds a value that cannot be read",
    ),
    "a Python object tag": (
        QUICKSTART.read_text().replace("seed: 7", "seed: !!python/object/apply:os.system [id]", 1).encode(),
        "could not determine a constructor",
    ),
    "a file too large": (QUICKSTART.read_bytes() + b"#" * (2 * 1024 * 1024), "more than 1048576"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_validate_refuses_a_hostile_manifest_with_exit_2_naming_the_place(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, said = HOSTILE[case]
    path = tmp_path / "job.yaml"
    path.write_bytes(data)
    started = time.monotonic()
    assert main(["validate", str(path)]) == 2
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert said in err and "Fix:" in err and "Traceback" not in err
    # Generous: a bomb expanded would take minutes and gigabytes, not seconds.
    assert elapsed < 30, f"{case} took {elapsed:.1f}s"


def test_fedsilo_run_refuses_a_bomb_before_creating_the_run_directory_or_keys(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(HOSTILE["an alias bomb under status"][0])
    result = subprocess.run(
        [sys.executable, "-m", "fedsilo", "run", str(path)], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 2, result.stderr
    assert "uses more than 64 aliases" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.yaml"], "nothing but the manifest exists"


def test_a_key_overriding_a_merged_one_is_not_a_duplicate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = QUICKSTART.read_text().replace("  seed: 7\n", "  <<: {seed: 3}\n  seed: 7\n", 1)
    path = tmp_path / "job.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
