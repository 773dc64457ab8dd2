"""The Rego bundle passes its own unit tests with the real OPA and is `opa fmt` and `opa check --strict` clean."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import ROOT


def _opa(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, cwd=ROOT, check=False, timeout=300)


def test_the_rego_unit_tests_pass(opa_binary: Path) -> None:
    result = _opa(opa_binary, "test", "policies", "--verbose")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout


def test_every_policy_has_its_tests_beside_it() -> None:
    policies = [p for p in (ROOT / "policies").rglob("*.rego") if not p.name.endswith("_test.rego")]
    assert policies
    for policy in policies:
        assert policy.with_name(policy.stem + "_test.rego").is_file(), f"{policy} has no tests beside it"


def test_the_policies_are_formatted(opa_binary: Path) -> None:
    result = _opa(opa_binary, "fmt", "--list", "--fail", "policies")
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_the_policies_type_check_strictly_as_a_bundle(opa_binary: Path) -> None:
    result = _opa(opa_binary, "check", "--strict", "--bundle", "policies")
    assert result.returncode == 0, result.stdout + result.stderr
