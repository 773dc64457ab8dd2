"""Session fixtures for the real tools and servers: a pytest plugin.

``tests/conftest.py`` registers it::

    pytest_plugins = ["fedsilo_testing.fixtures"]

``control_plane`` is one etcd + kube-apiserver for the whole run (see
:class:`fedsilo_testing.ControlPlane`; tests share it, so each creates its own namespaces);
``opa_binary``, ``kubectl_binary``, ``helm_binary`` and ``promtool_binary`` are the pinned tools. A tool that is
neither in the cache nor given by the environment is built before the first test runs, so
that a first build on a fresh machine does not count against any test's timeout.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from fedsilo_testing.controlplane import ControlPlane
from fedsilo_testing.tools import (
    FIXTURE_TOOLS,
    background_build_running,
    build_in_background,
    stop_background_build,
    tool_path,
    wait_for_background_build,
)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start building the tools the collected tests need.

    The tests that need none run meanwhile (tests/conftest.py orders them first); the others
    wait for the build in their fixtures.
    """
    if session.config.option.collectonly:
        return
    needed = {
        tool
        for item in session.items
        for fixture in getattr(item, "fixturenames", ())
        for tool in FIXTURE_TOOLS.get(fixture, ())
    }
    if needed:
        build_in_background(*sorted(needed))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    """Before the first test that needs a tool: wait for the build started at collection, saying so.

    Here, outside pytest-timeout's own wrapper of the same hook (tryfirst puts this one
    outermost), so the wait is not counted in the test's timeout: a cold build takes from
    minutes to most of an hour on a loaded machine, and each waiting test failed at its
    600 seconds while the build went on.
    """
    if FIXTURE_TOOLS.keys() & set(getattr(item, "fixturenames", ())):
        _wait_for_tools(item)
    return (yield)


def _wait_for_tools(item: pytest.Item) -> None:
    capture = item.config.pluginmanager.getplugin("capturemanager")
    # Past the capture to the process's own stderr: a pytest-xdist worker's terminal reporter
    # writes nowhere anyone reads, but its stderr is the terminal's.
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if background_build_running():
            print(f"\n[fedsilo] {item.nodeid} waits for the tool build started at collection", file=sys.__stderr__)
        outcome = wait_for_background_build()
        if outcome:
            print(f"\n[fedsilo] {outcome}", file=sys.__stderr__, flush=True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop a tool build that no test waited for (e.g. ``-k`` chose only tool-free tests)."""
    stop_background_build()


@pytest.fixture(scope="session")
def opa_binary() -> Path:
    """The pinned ``opa`` (or ``OPA_BIN``)."""
    return tool_path("opa")


@pytest.fixture(scope="session")
def kubectl_binary() -> Path:
    """The pinned ``kubectl`` (or ``KUBECTL_BIN``, or the one in ``KUBEBUILDER_ASSETS``)."""
    return tool_path("kubectl")


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    """The pinned ``helm`` (or ``HELM_BIN``)."""
    return tool_path("helm")


@pytest.fixture(scope="session")
def promtool_binary() -> Path:
    """The pinned ``promtool`` (or ``PROMTOOL_BIN``), for the alert rules' tests."""
    return tool_path("promtool")


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real etcd + kube-apiserver for the session, with an admin kubeconfig.

    Its certificates, logs and kubeconfig stay in pytest's temporary directory
    (``control-plane*``) for a look after a failure.
    """
    with ControlPlane(tmp_path_factory.mktemp("control-plane")) as plane:
        yield plane
