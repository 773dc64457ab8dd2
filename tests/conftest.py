"""Shared by every topic: the repository root, the real-server fixtures, and which tests are slow.

The fixtures that build the Go tools and run real servers come from the
:mod:`fedsilo_testing.fixtures` plugin. Tests are marked **by path**, as kopf marks its
``tests/e2e``: everything under ``tests/e2e/`` is ``e2e`` (whole jobs, the README's own
examples), and the files in :data:`INTEGRATION` are ``integration`` (a real
kube-apiserver + etcd or OPA server, tool builds, or silo processes in their own
namespaces). So is any test that asks for a real-server fixture, wherever it lives.

A plain ``pytest`` deselects both and runs only the fast in-process tests: nothing is
built, no server starts. ``pytest --all`` (what ``scripts/test``, and so CI, runs) selects
everything; naming a slow file or folder on the command line, or choosing with ``-m``,
selects it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from xdist.remote import Producer
from xdist.scheduler import LoadFileScheduling

from fedsilo_testing import OpaServer
from fedsilo_testing.tools import FIXTURE_TOOLS

ROOT = Path(__file__).parents[1]
TESTS = ROOT / "tests"

pytest_plugins = ["fedsilo_testing.fixtures"]

# No deadline for property tests: they assert values, not speed, and on a loaded machine one
# example's first call (imports, a cold cache) took 719 ms against hypothesis' default 200 ms.
settings.register_profile("fedsilo", deadline=None)
settings.load_profile("fedsilo")

#: Whole jobs end to end.
E2E = ("e2e",)
#: The real single-node cluster (scripts/cluster): asked for with --cluster, as scripts/test
#: does. Its tests run last, so that the cluster's cold build (scripts/cluster prepare, which
#: scripts/test starts in the background) has the rest of the suite's time; the costs are in
#: docs/install-hub.md ("The test cluster's costs").
CLUSTER = ("cluster",)
#: Real servers, tool builds, real silo processes or minutes of in-process training; paths
#: relative to ``tests/``.
INTEGRATION = (
    "tools",
    "charts",
    "fuzz",
    "cli/test_cluster_commands.py",
    "compression/test_compressed_training_converges.py",
    "crds/test_api_server_enforces_the_schema.py",
    "operator/test_jobs_become_their_children.py",
    "operator/test_least_privilege.py",
    "operator/test_two_replicas.py",
    "policy/test_opa_server_config.py",
    "policy/test_rego_tooling.py",
    "runner/test_trainer_isolation.py",
    "statistics/test_totals_come_from_the_trainer_process.py",
)
#: Fixtures that start a real server or need a Go-built tool.
SERVER_FIXTURES = frozenset({*FIXTURE_TOOLS, "opa_server"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cluster",
        action="store_true",
        default=False,
        help="also run tests/cluster against a real single-node cluster (builds it cold: tools, images)",
    )
    parser.addoption(
        "--all",
        action="store_true",
        default=False,
        help="also run the integration and e2e tests (real servers, Go tools, whole jobs), as CI does",
    )


def _under(path: Path, prefixes: tuple[str, ...]) -> bool:
    return any(path.is_relative_to(TESTS / prefix) for prefix in prefixes)


def _asked_for(config: pytest.Config) -> list[Path]:
    """Paths named on the command line that are narrower than the whole suite."""
    named = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    return [path for path in named if path.exists() and path not in (ROOT, TESTS)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the tests (no Go tool first, the cluster last), mark e2e and integration tests by
    their path, and leave those out of a plain run."""
    cluster = [item for item in items if _under(item.path, CLUSTER)]
    rest = [item for item in items if not _under(item.path, CLUSTER)]
    # The files whose tests need a Go-built tool run after those that need none, which run
    # while a cold machine builds the tools (fedsilo_testing.fixtures starts that build at
    # collection). By file, so that a module's fixtures are set up once.
    needs_tool = {item.path for item in rest if FIXTURE_TOOLS.keys() & set(getattr(item, "fixturenames", ()))}
    rest.sort(key=lambda item: item.path in needs_tool)
    if config.getoption("--cluster"):
        items[:] = rest + cluster
    else:
        config.hook.pytest_deselected(items=cluster)
        items[:] = rest
    for item in items:
        path = item.path
        # scripts/test runs the suite on every core (pytest-xdist, --dist loadgroup): each file
        # goes whole to one worker, so that its module fixtures (a shared job run, a server) are
        # set up once, and the cluster's files all go to one, as they share the one cluster.
        item.add_marker(pytest.mark.xdist_group("cluster" if _under(path, CLUSTER) else str(path.relative_to(TESTS))))
        if _under(path, E2E + CLUSTER):
            item.add_marker(pytest.mark.e2e)
        elif _under(path, INTEGRATION) or SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
    if config.getoption("--all") or config.getoption("markexpr"):
        return
    asked = _asked_for(config)
    keep, slow = [], []
    for item in items:
        fast = item.get_closest_marker("e2e") is None and item.get_closest_marker("integration") is None
        (keep if fast or any(item.path.is_relative_to(path) for path in asked) else slow).append(item)
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = keep


CLUSTER_SCOPE = "tests/cluster/"


class _WholeFiles(LoadFileScheduling):
    """pytest-xdist's scheduling by file, with the cluster's files as one: they share the one cluster.

    A file goes whole to one worker, so that its module fixtures (a shared job run, a server)
    are set up once; files go out in the order above, so the cluster's come last.
    """

    def _split_scope(self, nodeid: str) -> str:
        path = super()._split_scope(nodeid)
        return CLUSTER_SCOPE if path.startswith(CLUSTER_SCOPE) else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> _WholeFiles:
    """scripts/test runs the suite on every core (pytest-xdist): most of a test's time is spent
    waiting on the processes it started, so one pytest process keeps about one core busy."""
    return _WholeFiles(config, log)


@pytest.fixture(scope="session")
def opa_server(opa_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaServer]:
    """One real OPA server for the session, serving the policies/ bundle with decision logs."""
    log = tmp_path_factory.mktemp("opa") / "opa.log"
    with OpaServer(ROOT / "policies", bundle=True, decision_logs=True, binary=opa_binary, log=log) as server:
        yield server
