"""Every generated file (gRPC stubs, CRDs, policy input schemas) is what ``scripts/generate`` makes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]
GENERATE = ROOT / "scripts" / "generate"
#: A sample of each generator's files.
SAMPLES = (
    "src/fedsilo/protocol/fedsilo_pb2_grpc.py",
    "crds/fedsilo.io_federatedjobs.yaml",
    "src/fedsilo/policy/schema/update-input.v1.json",
)


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": str(ROOT / ".venv" / "bin" / "python")}
    if not Path(env["PYTHON"]).exists():
        env["PYTHON"] = shutil.which("python3") or "python3"
    return subprocess.run([str(GENERATE), *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def test_regenerating_the_committed_files_changes_nothing() -> None:
    checked = generate("--check")
    assert checked.returncode == 0, checked.stderr


def test_the_check_names_each_stale_or_missing_file_and_writing_heals_them(tmp_path: Path) -> None:
    # The charts' generated copies are made from hand-written files under deploy/ and charts/.
    for folder in ("deploy", "charts"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    written = generate("--root", str(tmp_path))
    assert written.returncode == 0, written.stderr
    for sample in SAMPLES:
        assert (tmp_path / sample).read_text() == (ROOT / sample).read_text()
    assert generate("--check", "--root", str(tmp_path)).returncode == 0

    stale, missing = tmp_path / SAMPLES[0], tmp_path / SAMPLES[1]
    stale.write_text(stale.read_text() + "# edited by hand\n")
    missing.unlink()
    checked = generate("--check", "--root", str(tmp_path))
    assert checked.returncode == 1
    assert SAMPLES[0] in checked.stderr and SAMPLES[1] in checked.stderr and SAMPLES[2] not in checked.stderr
    assert "run scripts/generate" in checked.stderr
    assert not missing.exists(), "--check writes nothing"

    healed = generate("--root", str(tmp_path))
    assert healed.returncode == 0
    assert f"regenerated {SAMPLES[0]}" in healed.stdout
    assert generate("--check", "--root", str(tmp_path)).returncode == 0


def test_an_unknown_flag_is_refused_with_usage() -> None:
    refused = generate("--bogus")
    assert refused.returncode == 2
    assert "usage: scripts/generate" in refused.stderr
