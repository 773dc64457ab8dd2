"""Fixtures and helpers of the operator tests: the CRDs in the session's control plane, the
operator running in ``kopf.testing.KopfRunner``, and waiting for what it does.

The control plane has no controller-manager and no kubelet: nothing garbage-collects,
Deployments never get replicas and pods stay Pending. :func:`mark_available` plays the
Deployment controller for the one fact the operator reads from it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kopf.testing import KopfRunner
from prometheus_client import REGISTRY

from fedsilo.kube import (
    CONFIG_MAP,
    DEPLOYMENT,
    NETWORK_POLICY,
    POD,
    ROLE,
    ROLE_BINDING,
    SECRET,
    SERVICE,
    SERVICE_ACCOUNT,
    Kind,
    KubeApi,
    load_access,
)
from fedsilo.operator import OperatorConfig, OperatorRole, PolicyParameters, build_registry, operator_settings
from fedsilo_testing import ControlPlane, install_crds

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
MANAGED = {"app.kubernetes.io/managed-by": "fedsilo-operator"}
CHILD_KINDS: tuple[Kind, ...] = (
    CONFIG_MAP,
    SECRET,
    SERVICE,
    SERVICE_ACCOUNT,
    POD,
    DEPLOYMENT,
    NETWORK_POLICY,
    ROLE,
    ROLE_BINDING,
)
T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("fedsilo_testing.fixtures")


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane) -> ControlPlane:
    """The session's control plane with the fedsilo CRDs installed."""
    install_crds(control_plane)
    return control_plane


@pytest.fixture(scope="session")
def admin(cluster: ControlPlane) -> KubeApi:
    """A fast client as cluster-admin, for looking at what the operator did."""
    return KubeApi(load_access(cluster.kubeconfig), "fedsilo-tests")


def unique(prefix: str) -> str:
    # Deleted namespaces are never finalized here, so every test run takes fresh names.
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def wait_for(check: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """Poll ``check`` until it returns something truthy; fail saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout:.0f}s: {what}")
        time.sleep(0.1)


def reconciles(resource: str, handler: str, outcome: str = "ok") -> float:
    """How often the operator in this process finished a handler with ``outcome``."""
    labels = {"resource": resource, "handler": handler, "outcome": outcome}
    return REGISTRY.get_sample_value("fedsilo_operator_reconciles_total", labels) or 0.0


#: The tests' installation admits two-silo masked jobs (the shipped policy asks for three), so
#: scenarios about other things stay small; tests/operator/test_job_admission.py runs the defaults.
TWO_SILO_MASKING = PolicyParameters(masked_min_silos=2)


@contextmanager
def running_operator(
    namespaces: Iterable[str],
    kubeconfig: Path,
    role: OperatorRole = OperatorRole.BOTH,
    parameters: PolicyParameters = TWO_SILO_MASKING,
    instance: str = "",
) -> Iterator[KopfRunner]:
    """The operator as ``fedsilo operator`` runs it, watching ``namespaces``, with ``kubeconfig``'s identity
    (and ``--instance``, as a partner's silo chart passes it)."""
    names = sorted(namespaces)
    config = OperatorConfig(namespaces=frozenset(names), policy_parameters=parameters)
    registry = build_registry(role, config, load_access(kubeconfig))
    args = ["run", "--standalone", *[arg for name in names for arg in ("-n", name)]]
    with KopfRunner(args, registry=registry, settings=operator_settings(role, instance), timeout=60) as runner:
        yield runner
    assert runner.exit_code == 0, runner.output[-5000:]


def children(api: KubeApi, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every object the operator manages in ``namespace``, by kind and name."""
    found = {}
    for kind in CHILD_KINDS:
        for obj in api.list(kind, namespace, MANAGED):
            found[(kind.kind, obj["metadata"]["name"])] = obj
    return found


def versions(api: KubeApi, namespaces: Iterable[str]) -> dict[tuple[str, str, str], str]:
    """The resourceVersion of every managed object: equal maps mean nothing was written."""
    return {
        (namespace, kind, name): obj["metadata"]["resourceVersion"]
        for namespace in namespaces
        for (kind, name), obj in children(api, namespace).items()
    }


def hub_children(job: str) -> set[tuple[str, str]]:
    """What the hub role creates for a job in its namespace."""
    aggregator = f"{job}-aggregator"
    kinds = ("ServiceAccount", "Role", "RoleBinding", "Deployment", "Service", "NetworkPolicy")
    return {
        ("ConfigMap", f"{job}-job"),
        ("ConfigMap", f"{job}-policies"),
        ("Secret", f"{aggregator}-tls"),
        *((kind, aggregator) for kind in kinds),
    }


def silo_children(job: str, silo: str, *, identity: bool = True) -> set[tuple[str, str]]:
    """What the silo role creates in a silo's workload namespace for one job (and its identity)."""
    prefix = f"{job}-{silo}"
    expected = {
        ("ConfigMap", f"{prefix}-job"),
        ("Service", f"{prefix}-sidecar"),
        ("NetworkPolicy", f"{prefix}-sidecar"),
        ("NetworkPolicy", f"{prefix}-trainer"),
        ("Pod", f"{prefix}-sidecar"),
        ("Pod", f"{prefix}-trainer"),
    }
    if identity:
        expected |= {("Secret", f"{silo}-identity"), ("ConfigMap", f"{silo}-identity-public")}
    return expected


def apply_file(cluster: ControlPlane, namespace: str, path: Path) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(path))


def apply_objects(cluster: ControlPlane, namespace: str, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(objects))


def get(cluster: ControlPlane, namespace: str, *what: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cluster.kubectl("get", "-n", namespace, *what, "-o", "json").stdout)
    return result


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """One condition of an object's status ({} if absent)."""
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def wait_for_condition(cluster: ControlPlane, namespace: str, job: str, kind: str) -> dict[str, Any]:
    """The FederatedJob ``job`` once its condition ``kind`` is True."""
    return wait_for(
        lambda: (
            (j := get(cluster, namespace, "federatedjob", job)) and condition(j, kind).get("status") == "True" and j
        ),
        f"{kind}=True on {namespace}/{job}",
    )


def mark_available(cluster: ControlPlane, namespace: str, deployment: str) -> None:
    """Report the Deployment's replica as available, as the Deployment controller and a kubelet would."""
    status = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1}
    cluster.kubectl(
        "patch",
        "deployment",
        deployment,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def service_account_kubeconfig(cluster: ControlPlane, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates with a fresh token of a ServiceAccount (the TokenRequest API)."""
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"] = [{"name": account, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = account
    path.write_text(yaml.safe_dump(config))
    return path


class Recorded(logging.Handler):
    """Every log record of the operator process while the module runs, as formatted text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")


@pytest.fixture(scope="module")
def logged() -> Iterator[Recorded]:
    """What the operator logs, its audit records at INFO included, whatever level the test run logs at."""
    handler, root, audit = Recorded(), logging.getLogger(), logging.getLogger("fedsilo.audit.certificates")
    level = audit.level
    audit.setLevel(logging.INFO)
    root.addHandler(handler)
    audit.addHandler(handler)
    audit.propagate = False
    yield handler
    audit.propagate = True
    audit.removeHandler(handler)
    root.removeHandler(handler)
    audit.setLevel(level)
