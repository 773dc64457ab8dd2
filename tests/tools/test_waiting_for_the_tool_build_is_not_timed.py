"""A test that needs a Go-built tool waits for the build started at collection outside its own timeout.

A cold build takes from minutes to most of an hour on a loaded machine: counted in each test's
600 seconds, every test that waited for it failed with a pytest-timeout error while the build
went on (365 of them in one cold run). The session below stands in for that: its "build" is a
five-second sleep, and its test's timeout is two seconds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CONFTEST = """
import threading
import time
from pathlib import Path

import pytest

import fedsilo_testing.tools as tools

pytest_plugins = ["fedsilo_testing.fixtures"]


def pytest_collection_finish(session):
    # Stands in for the cold build fedsilo_testing.fixtures starts at collection.
    tools._background = threading.Thread(target=time.sleep, args=(5,))
    tools._background.start()


@pytest.fixture
def opa_binary():
    # The name marks the test as needing a tool; no real one is built.
    return Path(__file__)
"""

TEST = """
def test_needs_a_tool(opa_binary):
    assert opa_binary.exists()
"""


def test_a_test_waiting_for_the_tool_build_is_not_failed_by_its_timeout(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_waits.py").write_text(TEST)
    session = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--timeout", "2", "test_waits.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert session.returncode == 0, session.stdout + session.stderr
    assert "1 passed" in session.stdout
    assert "waits for the tool build started at collection" in session.stderr
