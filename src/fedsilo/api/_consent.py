"""Purpose limitation: whether a Silo's stated consent covers a FederatedJob, and if not, what is missing.

A Silo's ``spec.consent`` lists the data classes, purposes and job names it lets its data be
used for. The hub refuses a job that names a silo outside its consent
(``fedsilo.operator._hub``), the silo's own operator independently starts no pod for it
(``fedsilo.operator._silo``), and the local run refuses it before anything starts
(``fedsilo.runner._local``), all through :func:`consent_refusal`, so the three agree word for word.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from ._types import FederatedJob, Silo

#: Which part of the consent a job falls outside of, as the spec spells it.
MissingConsent = Literal["dataClass", "purpose", "jobName"]


@dataclass(frozen=True)
class ConsentRefusal:
    """A silo named by a job without its consent: which silo, what is missing, and what to change."""

    silo: str
    missing: MissingConsent
    message: str


def consent_refusal(job: FederatedJob, silo: Silo) -> ConsentRefusal | None:
    """Why ``silo`` has not consented to ``job``, or None if it has (or manages no consent)."""
    consent = silo.spec.consent
    if consent is None:
        return None
    name, job_name = silo.metadata.name, job.metadata.name
    data_class = job.spec.policy.data_class
    if data_class not in consent.data_classes:
        listed = ", ".join(c.value for c in consent.data_classes)
        return ConsentRefusal(
            name,
            "dataClass",
            f"Silo {name} has not consented to {data_class.value} data (its spec.consent.dataClasses lists {listed}); "
            f"its owner must add {data_class.value} there, or job {job_name} must not name it",
        )
    purposes = ", ".join(consent.purposes)
    if job.spec.purpose is None:
        return ConsentRefusal(
            name,
            "purpose",
            f"Silo {name} consents only to the purposes {purposes} and job {job_name} states none; "
            "set the job's spec.purpose to one of them",
        )
    if job.spec.purpose not in consent.purposes:
        return ConsentRefusal(
            name,
            "purpose",
            f"Silo {name} has not consented to the purpose {job.spec.purpose} (its spec.consent.purposes lists "
            f"{purposes}); its owner must add it there, or job {job_name} must not name it",
        )
    if not any(fnmatchcase(job_name, pattern) for pattern in consent.job_names):
        return ConsentRefusal(
            name,
            "jobName",
            f"Silo {name} has not consented to job {job_name}: no pattern of its spec.consent.jobNames "
            f"({', '.join(consent.job_names)}) matches the name; its owner must add one that does",
        )
    return None


def consent_refusals(job: FederatedJob, silos: list[Silo]) -> list[ConsentRefusal]:
    """The refusal of every silo in ``silos`` that has not consented to ``job``, in their order."""
    return [refusal for silo in silos if (refusal := consent_refusal(job, silo)) is not None]
