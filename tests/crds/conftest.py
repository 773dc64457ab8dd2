"""Fixtures of the CRD tests: the committed CRDs installed once in the session's control plane."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedsilo_testing import ControlPlane, install_crds

ROOT = Path(__file__).parents[2]
CRDS = ROOT / "crds"
EXAMPLES = ROOT / "examples"


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("fedsilo_testing.fixtures")


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane) -> ControlPlane:
    """The session's control plane with the fedsilo CRDs installed."""
    install_crds(control_plane)
    return control_plane


@pytest.fixture
def namespace(cluster: ControlPlane) -> Iterator[str]:
    """A fresh namespace (the control plane never finalizes deleted namespaces, so names are unique)."""
    yield cluster.create_namespace(f"crds-{uuid.uuid4().hex[:8]}")
