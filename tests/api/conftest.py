"""Fixtures of the API tests: the session's control plane (for the corpus shared with the API server)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("fedsilo_testing.fixtures")
