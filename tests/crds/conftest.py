"""Fixtures of the CRD tests: the committed CRDs installed once in the session's control plane."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ControlPlane

ROOT = Path(__file__).parents[2]
CRDS = ROOT / "crds"
EXAMPLES = ROOT / "examples"


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("tests.support.fixtures")


def install_crds(plane: ControlPlane) -> None:
    """Apply the committed CRDs and wait until the API server serves them."""
    plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/federatedjobs.fedsilo.io",
        "crd/silos.fedsilo.io",
    )


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane) -> ControlPlane:
    """The session's control plane with the fedsilo CRDs installed."""
    install_crds(control_plane)
    return control_plane


@pytest.fixture
def namespace(cluster: ControlPlane) -> Iterator[str]:
    """A fresh namespace (the control plane never finalizes deleted namespaces, so names are unique)."""
    yield cluster.create_namespace(f"crds-{uuid.uuid4().hex[:8]}")
