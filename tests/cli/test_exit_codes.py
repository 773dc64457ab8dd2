"""The command line's exit codes, and that an invalid manifest starts nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

QUICKSTART = ROOT / "examples" / "quickstart.yaml"


def _fedsilo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedsilo", *args], capture_output=True, text=True, cwd=cwd, check=False
    )


def test_an_invalid_manifest_exits_2_names_the_field_and_starts_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(QUICKSTART.read_text().replace("minSilos: 2", "minSilos: 9"))
    result = _fedsilo("run", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "spec: minSilos (9) is above the number of silos (3)" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_workdir_too_deep_for_the_trainer_links_socket_is_refused_naming_it_and_starts_nothing(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 40) / ("e" * 40) / "run"
    result = _fedsilo("run", str(QUICKSTART), "--workdir", str(deep), "--no-baseline", cwd=tmp_path)
    # 3, an environment error, as the kernel's limit on a socket's path is what refuses it.
    assert result.returncode == 3, result.stderr
    # The terminal wraps the long path anywhere: compare without whitespace.
    flat = "".join(result.stderr.split())
    assert f"--workdir{deep}istoodeep" in flat and "chooseashorter--workdir" in flat, result.stderr
    assert not deep.exists()


def test_validate_accepts_the_quickstart(tmp_path: Path) -> None:
    result = _fedsilo("validate", str(QUICKSTART), cwd=tmp_path)
    assert result.returncode == 0 and "is valid" in result.stdout


def test_a_sidecar_for_a_silo_outside_the_job_exits_2(tmp_path: Path) -> None:
    result = _fedsilo(
        "sidecar",
        "--job-config",
        str(QUICKSTART),
        "--silo",
        "nobody",
        "--aggregator",
        "localhost:1",
        "--identity-dir",
        str(tmp_path),
        "--trainer-listen",
        f"unix:{tmp_path}/s.sock",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "--silo nobody is not in the job's spec.silos" in result.stderr


def test_identity_create_writes_private_files_0600_and_prints_only_the_public_key(tmp_path: Path) -> None:
    result = _fedsilo("identity", "create", "--silo", "clinic", "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0
    folder = tmp_path / "clinic"
    for secret in ("signing-key.pem", "tls.key"):
        assert (folder / secret).stat().st_mode & 0o777 == 0o600
        assert (folder / secret).read_text().splitlines()[1] not in result.stdout
    assert (folder / "signing-key.pub").read_text().strip() in result.stdout
    again = _fedsilo("identity", "create", "--silo", "clinic", "--out", str(tmp_path), cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr
