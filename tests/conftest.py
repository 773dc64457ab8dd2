"""Shared by every topic: the repository root, and the session fixtures of ``tests.support``
(the Go-built tools and the real servers they run)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import OpaServer

ROOT = Path(__file__).parents[1]

pytest_plugins = ["tests.support.fixtures"]


@pytest.fixture(scope="session")
def opa_server(opa_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaServer]:
    """One real OPA server for the session, serving the policies/ bundle with decision logs."""
    log = tmp_path_factory.mktemp("opa") / "opa.log"
    with OpaServer(ROOT / "policies", bundle=True, decision_logs=True, binary=opa_binary, log=log) as server:
        yield server
