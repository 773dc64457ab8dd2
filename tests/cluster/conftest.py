"""The real cluster, and fedsilo installed in it with its own charts (the layout is
described in fedsilo_testing.cluster)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fedsilo_testing.cluster import Cluster, cluster_session, install_fedsilo


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The real single-node cluster, up once for the session."""
    yield from cluster_session()


@pytest.fixture(scope="session")
def fedsilo(cluster: Cluster) -> Cluster:
    """fedsilo installed with its charts."""
    return install_fedsilo(cluster)
