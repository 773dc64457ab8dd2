"""The real OPA server: starts over a policy directory and answers data API queries."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from fedsilo_testing import OpaServer
from fedsilo_testing.tools import is_overridden, pinned_version

pytestmark = pytest.mark.integration

POLICY = """\
package smoke

default allow := false

allow if input.user == "alice"
"""


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policy"
    directory.mkdir()
    (directory / "smoke.rego").write_text(POLICY)
    return directory


def test_opa_answers_a_data_query_for_a_policy_loaded_from_a_directory(opa_binary: Path, policy_dir: Path) -> None:
    with OpaServer(policy_dir, binary=opa_binary) as opa:
        assert opa.query("smoke/allow", {"user": "alice"}) is True
        assert opa.query("smoke/allow", {"user": "bob"}) is False
        assert opa.query("smoke/undefined", {"user": "alice"}) is None


def test_decision_logs_go_to_the_console(opa_binary: Path, policy_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "opa.log"
    with OpaServer(policy_dir, binary=opa_binary, decision_logs=True, log=log) as opa:
        answer = opa.post("/v1/data/smoke/allow", {"input": {"user": "alice"}})

        deadline = time.monotonic() + 10
        while answer["decision_id"] not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)

    assert answer["decision_id"] in log.read_text()


def test_opa_serves_a_bundle_directory(opa_binary: Path, policy_dir: Path) -> None:
    (policy_dir / ".manifest").write_text(json.dumps({"roots": ["smoke"]}))

    with OpaServer(policy_dir, binary=opa_binary, bundle=True) as opa:
        assert opa.query("smoke/allow", {"user": "alice"}) is True


def test_the_opa_binary_is_the_pinned_version(opa_binary: Path) -> None:
    reported = subprocess.run([str(opa_binary), "version"], capture_output=True, text=True, check=True).stdout
    assert reported.startswith("Version: ")
    if not is_overridden("opa"):
        assert f"Version: {pinned_version('opa').removeprefix('v')}" in reported
