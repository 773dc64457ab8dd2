"""The Rego bundle passes its own unit tests and is `opa fmt` and `opa check --strict` clean."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import ROOT


def _opa(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, cwd=ROOT, check=False)


def test_the_rego_unit_tests_pass(opa_binary: Path) -> None:
    result = _opa(opa_binary, "test", "policies", "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout


def test_the_policies_are_formatted(opa_binary: Path) -> None:
    result = _opa(opa_binary, "fmt", "--list", "--fail", "policies")
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout


def test_the_policies_type_check_strictly(opa_binary: Path) -> None:
    result = _opa(opa_binary, "check", "--strict", "policies")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_ships_the_same_bundle() -> None:
    shipped = ROOT / "src" / "fedsilo" / "policy" / "bundle"
    assert shipped.resolve() == (ROOT / "policies").resolve()
