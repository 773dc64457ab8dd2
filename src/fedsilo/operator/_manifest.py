"""The job manifest the operator mounts into the aggregator, sidecar and trainer pods.

It is the same multi-document YAML ``fedsilo run`` reads, rendered by the same function
(:func:`fedsilo.launch.render_job_manifest`); the operator adds where a Silo's public key
may be (its spec, else the key the operator generated in its status).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import kopf
from pydantic import ValidationError

from fedsilo.api import FederatedJob, Silo
from fedsilo.launch import render_job_manifest

log = logging.getLogger(__name__)

#: A Silo object by namespace and name, as the operator's index of Silos holds it (None if absent).
SiloLookup = Callable[[str, str], Mapping[str, Any] | None]


def parse_object(body: Mapping[str, Any], model: type[FederatedJob] | type[Silo]) -> Any:
    """Validate an object from the API server; an invalid one is a permanent error.

    The CRD schema rejects almost everything the model does; this catches what slipped
    through (e.g. an object stored before the CRD was upgraded).
    """
    try:
        return model.model_validate(dict(body))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise kopf.PermanentError(f"invalid {model.__name__}: {problems}") from error


def named_silos(lookup: SiloLookup, namespace: str, names: Iterable[str]) -> dict[str, Silo]:
    """The named Silos that exist in ``namespace``, validated; an invalid one is left out with a warning."""
    silos = {}
    for name in names:
        body = lookup(namespace, name)
        if body is None:
            continue
        try:
            silos[name] = parse_object(body, Silo)
        except kopf.PermanentError as error:
            log.warning("ignoring invalid Silo %s/%s: %s", namespace, name, error)
    return silos


def registered_key(silo: Silo) -> str | None:
    """The silo's public key: registered in the spec, else the one the operator generated (status)."""
    if silo.spec.identity.public_key:
        return silo.spec.identity.public_key
    identity = (silo.status or {}).get("identity") or {}
    key = identity.get("publicKey")
    return str(key) if key else None


def registered_cas(silo: Silo) -> str | None:
    """The CAs the hub trusts for the silo (PEM, one or two during a rotation), from its status; None before any."""
    identity = (silo.status or {}).get("identity") or {}
    ca = identity.get("caCertificate")
    return str(ca) if ca else None


def job_manifest(job: FederatedJob, silos: Sequence[Silo]) -> str:
    """The manifest text: the job, then its silos in the job's order, each with its registered key."""
    return render_job_manifest(job, silos, public_key=registered_key)


class SeenStanding:
    """What was last seen of each Silo's standing (public key, CAs, suspension), so a Silo event acts only on a change."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[str | None, str | None, str | None]] = {}
        self._lock = threading.Lock()

    def changed(self, silo: Silo) -> frozenset[str]:
        """Record the silo's standing; what differs from the last one seen: ``"key"``, ``"ca"``, ``"suspension"``.

        A key or CA appearing for the first time is a change (the jobs naming the silo were
        waiting for it); so is a suspension seen for the first time, which the operator reports.
        A changed CA bundle is a rotation under way (docs/operations.md).
        """
        suspended = silo.spec.suspended
        now = (registered_key(silo), suspended.reason if suspended is not None else None, registered_cas(silo))
        where = (str(silo.metadata.namespace), silo.metadata.name)
        with self._lock:
            before = self._seen.get(where)
            self._seen[where] = now
        changes = set()
        if now[0] is not None and (before is None or before[0] != now[0]):
            changes.add("key")
        if (before[1] if before is not None else None) != now[1]:
            changes.add("suspension")
        if now[2] is not None and (before is None or before[2] != now[2]):
            changes.add("ca")
        return frozenset(changes)
