"""Consent of a workload namespace: a Silo runs in another namespace only if that namespace says so.

A Silo may name another namespace for its pods and identity with the
``fedsilo.io/workload-namespace`` annotation. Whoever may write Silos in one namespace must
not thereby reach into another (its identity Secrets, claims, network), so the operator
honours the annotation only when the target Namespace carries ``fedsilo.io/accept-silos``
listing the Silo as ``<silo-namespace>/<silo-name>``: only someone who may edit that
Namespace can give it. System namespaces are refused whatever they say. The
ValidatingAdmissionPolicy in ``deploy/admission`` refuses the obviously wrong values at
admission; this check covers what CEL cannot see (another object's annotations).
Called by :class:`fedsilo.operator._silo.SiloReconciler` before it creates anything.

A job's consent is the other question: whether each Silo it names has consented to its data
class, purpose and name (``spec.consent``, :func:`fedsilo.api.consent_refusal`).
:func:`job_consent_problem` answers it for the hub role, which refuses the job before
creating anything, and for the silo role, which independently starts no pod for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from fedsilo.api import FederatedJob, Silo, consent_refusals, workload_namespace_problem
from fedsilo.telemetry import CONSENT_REFUSALS

from ._conditions import Problem
from ._names import ACCEPT_SILOS_ANNOTATION, WORKLOAD_NAMESPACE_ANNOTATION


def accepted_silos(namespace: Mapping[str, Any] | None) -> frozenset[str]:
    """The ``<namespace>/<name>`` entries a Namespace object accepts."""
    annotations = ((namespace or {}).get("metadata") or {}).get("annotations") or {}
    listed = str(annotations.get(ACCEPT_SILOS_ANNOTATION, ""))
    return frozenset(entry.strip() for entry in listed.split(",") if entry.strip())


def forbidden_target(workload: str, own_namespace: str) -> Problem | None:
    """Why ``workload`` can never be the Silo's workload namespace (the admission policy's checks), or None."""
    problem = workload_namespace_problem(workload, own_namespace)
    return None if problem is None else Problem("WorkloadNamespaceForbidden", problem)


def consent_problem(
    silo_namespace: str, silo_name: str, workload: str, target: Mapping[str, Any] | None
) -> Problem | None:
    """Why the Silo may not use ``workload`` (whose Namespace object is ``target``), or None if it may."""
    if workload == silo_namespace:
        return None
    forbidden = forbidden_target(workload, silo_namespace)
    if forbidden is not None:
        return forbidden
    entry = f"{silo_namespace}/{silo_name}"
    if entry in accepted_silos(target):
        return None
    return Problem(
        "WorkloadNamespaceNotConsented",
        f"namespace {workload} has not accepted Silo {entry}; its owner must run "
        f"'kubectl annotate namespace {workload} {ACCEPT_SILOS_ANNOTATION}={entry}' "
        f"(comma-separate several), or remove the {WORKLOAD_NAMESPACE_ANNOTATION} annotation",
    )


#: The reason of the condition and the Warning Event of a job refused for want of consent.
CONSENT_MISSING = "ConsentMissing"


def job_consent_problem(job: FederatedJob, silos: Iterable[Silo], role: Literal["hub", "silo"]) -> Problem | None:
    """Why ``job`` may not go on with ``silos`` (those without consent, each named with what it lacks), or None.

    Counted in ``fedsilo_operator_consent_refusals_total`` by role and missing consent.
    """
    refused = consent_refusals(job, list(silos))
    if not refused:
        return None
    for refusal in refused:
        CONSENT_REFUSALS.labels(role, refusal.missing).inc()
    said = "; ".join(refusal.message for refusal in refused)
    if role == "hub":
        return Problem(
            CONSENT_MISSING, f"job {job.metadata.name} names a silo without its consent, nothing is created: {said}"
        )
    return Problem(CONSENT_MISSING, f"this silo's operator starts no pod for job {job.metadata.name}: {said}")
