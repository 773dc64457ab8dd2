"""The job manifest every process of a job reads: one renderer for the local run and the operator.

It is the same multi-document YAML ``fedsilo run`` takes (one FederatedJob, then its Silos
in the job's order, each with its registered public key), so the aggregator, sidecars and
trainers load their configuration with :func:`fedsilo.api.load_manifest` whether a local
run (``fedsilo.runner``) or the operator (``fedsilo.operator``) wrote the file. Both sides
render it here, so the hub and every silo see byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import yaml
from pydantic import BaseModel

from fedsilo.api import FederatedJob, Silo, SiloIdentity


def _spec_key(silo: Silo) -> str | None:
    return silo.spec.identity.public_key


def _document(model: BaseModel, name: str) -> dict[str, Any]:
    document: dict[str, Any] = model.model_dump(by_alias=True, exclude_none=True, mode="json", exclude={"status"})
    # Only the name: uid, managedFields and kopf's annotations mean nothing to the processes.
    document["metadata"] = {"name": name}
    return document


def render_job_manifest(
    job: FederatedJob, silos: Sequence[Silo], public_key: Callable[[Silo], str | None] = _spec_key
) -> str:
    """The manifest text: the job, then its silos in the job's order, each with ``public_key(silo)``.

    ``public_key`` defaults to the key registered in the Silo's spec; the operator passes one
    that also takes the key it generated (the Silo's status).

    Raises:
        KeyError: a silo the job names is not among ``silos``.
    """
    by_name = {silo.metadata.name: silo for silo in silos}
    documents = [_document(job, job.metadata.name)]
    for name in job.spec.silos:
        silo = by_name[name]
        with_key = silo.spec.model_copy(update={"identity": SiloIdentity(public_key=public_key(silo))})
        documents.append(_document(silo.model_copy(update={"spec": with_key}), name))
    return yaml.safe_dump_all(documents, sort_keys=False)


def manifest_without_standing(text: str) -> str:
    """``text`` (a rendered manifest) without its silos' standing: ``spec.suspended`` and the public keys.

    A running aggregator takes both from the re-read manifest at its next round boundary
    (``fedsilo.runner.manifest_standing``), so what the operator digests to decide whether
    the aggregator must be rebuilt leaves them out: a suspension or a rotated key updates the
    mounted file, never restarts the job.
    """
    documents = list(yaml.safe_load_all(text))
    for document in documents:
        if document.get("kind") != "Silo":
            continue
        spec = document.get("spec") or {}
        spec.pop("suspended", None)
        (spec.get("identity") or {}).pop("publicKey", None)
    return yaml.safe_dump_all(documents, sort_keys=False)
