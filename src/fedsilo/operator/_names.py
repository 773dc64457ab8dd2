"""Names, labels, annotations and ownership of the objects the operator creates, in one place.

The builders name every child from its job (and silo); the reconcilers find children again
by these labels when they clean up. Kubernetes caps most names at 63 characters (a DNS
label), so long combinations keep a readable prefix and end in a short hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, cast

import kopf

from fedsilo import __version__
from fedsilo.api import WORKLOAD_NAMESPACE_ANNOTATION as WORKLOAD_NAMESPACE_ANNOTATION
from fedsilo.kube import Object

GROUP = "fedsilo.io"
JOB_LABEL = f"{GROUP}/job"
JOB_NAMESPACE_LABEL = f"{GROUP}/job-namespace"
SILO_LABEL = f"{GROUP}/silo"
COMPONENT_LABEL = "app.kubernetes.io/component"
#: The sidecar pods' component: the silo side builds them, the hub admits only them to its aggregator.
SIDECAR = "sidecar"
#: On a Namespace, value "true": silo workloads run here, so its sidecars may dial the hub's
#: aggregators in this cluster (the aggregator's NetworkPolicy selects such namespaces only).
SILO_NAMESPACE_LABEL = f"{GROUP}/silo-namespace"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "fedsilo-operator"

#: On a Namespace: the Silos (``<namespace>/<name>``, comma-separated) that may run there
#: although they are defined elsewhere; without it no other namespace's Silo reaches in.
ACCEPT_SILOS_ANNOTATION = f"{GROUP}/accept-silos"
#: On a pod or pod template: digest of everything the pod was built from; a change replaces the pod.
SPEC_DIGEST_ANNOTATION = f"{GROUP}/spec-digest"
FINGERPRINT_ANNOTATION = f"{GROUP}/fingerprint"

_MAX_NAME = 63
_HASH_LENGTH = 8


def child_name(*parts: str) -> str:
    """``part-part-...``, shortened to a DNS label with a hash suffix if it is too long."""
    name = "-".join(parts)
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_LENGTH]
    return f"{name[: _MAX_NAME - _HASH_LENGTH - 1].rstrip('-')}-{digest}"


def labels(
    component: str, job: str | None = None, silo: str | None = None, job_namespace: str | None = None
) -> dict[str, str]:
    """The labels of a child: what it is, which job and silo it serves, who manages it."""
    result = {
        "app.kubernetes.io/name": "fedsilo",
        "app.kubernetes.io/version": __version__,
        COMPONENT_LABEL: component,
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    if job is not None:
        result[JOB_LABEL] = job
    if job_namespace is not None:
        result[JOB_NAMESPACE_LABEL] = job_namespace
    if silo is not None:
        result[SILO_LABEL] = silo
    return result


def selector(component: str, job: str, silo: str | None = None, job_namespace: str | None = None) -> dict[str, str]:
    """The labels that pick one component's pods (no version: a selector must survive upgrades)."""
    result = {COMPONENT_LABEL: component, JOB_LABEL: job}
    if job_namespace is not None:
        result[JOB_NAMESPACE_LABEL] = job_namespace
    if silo is not None:
        result[SILO_LABEL] = silo
    return result


def as_body(obj: Mapping[str, Any]) -> kopf.Body:
    """An object as kopf's ``Body`` (kopf hands one over; tests and the reconcilers may hold a dict)."""
    return obj if isinstance(obj, kopf.Body) else kopf.Body(cast(kopf.RawBody, dict(obj)))


def normal_event(obj: Mapping[str, Any], reason: str, message: str) -> None:
    """Post a Normal Event on ``obj``.

    Not ``kopf.info``: kopf posts that only when ``settings.posting.level`` allows INFO, and the
    operator keeps it at WARNING so that its log's successes do not drown the rounds' Events.
    """
    kopf.event(as_body(obj), type="Normal", reason=reason, message=message)


def adopt(children: list[Object], owner: Mapping[str, Any]) -> list[Object]:
    """Make ``owner`` the controller of ``children`` (same namespace only), as ``kopf.adopt`` does."""
    kopf.adopt(children, owner=as_body(owner))
    return children
