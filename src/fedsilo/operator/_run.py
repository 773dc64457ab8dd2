"""Running the operator: kopf settings per role, metrics, peering, and the entry point the CLI calls.

``fedsilo operator --role hub|silo|both`` calls :func:`run_operator`, which blocks until
the process is told to stop. Tests build the same registry and settings and run them in
``kopf.testing.KopfRunner``.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import kopf
from prometheus_client import start_http_server

from fedsilo.kube import load_access

from ._config import OperatorConfig, OperatorRole
from ._handlers import build_registry

#: kopf's own bookkeeping (handler progress, last-handled spec, finalizer) is kept under a
#: prefix per role, so a hub operator and a silo operator on one cluster never mix theirs.
_STATE_PREFIX = {OperatorRole.HUB: "hub", OperatorRole.SILO: "silo", OperatorRole.BOTH: "operator"}
#: An installation's name, as Helm names releases (a DNS subdomain), at most 63 characters: it
#: becomes part of annotation keys, the finalizer and the peering object's name.
_INSTANCE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _check_instance(instance: str) -> None:
    if instance and (len(instance) > 63 or not _INSTANCE.fullmatch(instance)):
        raise ValueError(
            f"--instance {instance!r} is not a DNS name of at most 63 characters (lowercase letters, digits, "
            "'-' and '.'): name the installation as its Helm release's full name"
        )


def operator_settings(role: OperatorRole, instance: str = "") -> kopf.OperatorSettings:
    """Kopf settings: per-role (and per-installation) annotations and finalizer, no status writes of kopf's own, quiet Events.

    ``instance`` names one installation among several of the same role on one cluster: two
    partners' silo operators both handle the FederatedJobs of a shared job namespace, and each
    must keep its own progress and finalizer on them (one's finished handler or removed
    finalizer is not the other's). Empty keeps the names of a single installation.

    Raises:
        ValueError: ``instance`` is not a DNS name of at most 63 characters.
    """
    _check_instance(instance)
    settings = kopf.OperatorSettings()
    prefix = f"{_STATE_PREFIX[role]}.fedsilo.io"
    settings.persistence.finalizer = f"fedsilo.io/{_STATE_PREFIX[role]}-cleanup"
    if instance:
        prefix = f"{instance}.{prefix}"
        settings.persistence.finalizer = f"{prefix}/cleanup"
    # Annotations only: the status schema is structural and owned by fedsilo's writers.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=prefix, key="last-handled-configuration"
    )
    # Only warnings and errors become Kubernetes Events; successes would drown the rounds' Events.
    settings.posting.level = logging.WARNING
    # Handlers are synchronous API calls; 100 jobs applied at once should not queue behind 6 threads.
    settings.execution.max_workers = 16
    # The resources and namespaces are known: no watching of CRDs or namespaces for changes.
    settings.scanning.disabled = True
    # A standby replica takes over within this many seconds of the active one vanishing.
    settings.peering.lifetime = 30
    return settings


def peering_name(role: OperatorRole, instance: str = "") -> str:
    """The KopfPeering object the replicas of one installation share (the charts create it by this name)."""
    return f"fedsilo-{role.value}-{instance}" if instance else f"fedsilo-{role.value}"


def run_operator(
    role: OperatorRole | str,
    namespaces: Sequence[str] = (),
    *,
    kubeconfig: Path | None = None,
    config: OperatorConfig | None = None,
    metrics_port: int | None = 8080,
    liveness_port: int | None = 8081,
    peering: bool = True,
    priority: int | None = None,
    instance: str = "",
) -> None:
    """Run the operator until it is told to stop.

    Args:
        role: ``hub``, ``silo`` or ``both``.
        namespaces: where to watch and create objects; empty means cluster-wide.
        kubeconfig: credentials file; without one, in-cluster credentials (or ``$KUBECONFIG``).
        config: images and cluster conventions (its ``namespaces`` is replaced by ``namespaces``).
        metrics_port: where Prometheus scrapes ``/metrics``; None to serve none.
        liveness_port: where the kubelet probes ``/healthz``; None to serve none.
        peering: coordinate replicas through kopf peering (``fedsilo-<role>``): the replica with
            the highest priority works, the others stand by. Needs the KopfPeering CRDs and a
            peering object; False runs standalone.
        priority: this replica's peering priority; random by default, so replicas differ.
        instance: this installation's name when several of one role share namespaces (a
            partner's silo chart passes its release's full name): kopf's state on shared
            objects and the peering object (``fedsilo-<role>-<instance>``) are then its own.

    Raises:
        ValueError: ``instance`` is not a DNS name of at most 63 characters; nothing was started.
    """
    role = OperatorRole(role)
    settings = operator_settings(role, instance)
    config = replace(config or OperatorConfig(), namespaces=frozenset(namespaces))
    registry = build_registry(role, config, load_access(kubeconfig))
    if metrics_port is not None:
        start_http_server(metrics_port)
    kopf.run(
        registry=registry,
        settings=settings,
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        standalone=not peering,
        peering_name=peering_name(role, instance) if peering else None,
        priority=priority if priority is not None else secrets.randbelow(1 << 30) + 1,
        liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port is not None else None,
    )
