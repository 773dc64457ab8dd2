"""What the aggregator records into the telemetry catalog (``fedsilo.telemetry``) as a job runs.

The coordinator calls :func:`job_started`, :func:`round_recorded`, :func:`model_scored`
and :func:`job_finished`; admission calls :func:`update_decided`. ``fedsilo aggregator
--metrics-port`` (in a cluster) and the local run serve the default registry. Metrics carry
only names, counts and figures, never payloads; a ``silo`` label is only ever a silo the
job's validated spec names, a ``reason`` label only a code of :class:`fedsilo.policy.Reason`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from fedsilo.api import FederatedJob
from fedsilo.policy import Reason
from fedsilo.telemetry import (
    ACCURACY_SPREAD,
    BYTES,
    COSINE,
    DECISIONS,
    DENIALS,
    DIVERGENCE,
    EPSILON,
    EPSILON_REMAINING,
    EVALUATED_ROUND,
    JOB_PROGRESS,
    JOB_RUNNING,
    MODEL_ACCURACY,
    ROUND_SECONDS,
    ROUNDS,
    SILO_ACCURACY,
    SILO_ROUNDS,
    SILO_UPDATE_SECONDS,
)

from ._contracts import RoundSummary
from ._quality import ModelQuality

_KNOWN_REASONS = frozenset(reason.value for reason in Reason)
#: The ``silo`` label of a caller the job does not name (its update is refused anyway).
UNENROLLED = "unenrolled"


def _silo_label(job: FederatedJob, silo: str) -> str:
    return silo if silo in job.spec.silos else UNENROLLED


def job_started(job: FederatedJob) -> None:
    """The aggregator took the job on: it runs, and has made progress now."""
    JOB_RUNNING.labels(job.metadata.name).set(1)
    JOB_PROGRESS.labels(job.metadata.name).set(time.time())


def job_finished(job: FederatedJob, failure: str) -> None:
    """The job ended, with ``failure`` ("" when it completed)."""
    name = job.metadata.name
    if failure:
        ROUNDS.labels(name, "failed").inc()
    JOB_RUNNING.labels(name).set(0)


def round_retried(job: FederatedJob) -> None:
    """A round failed without ending the job (homomorphic mode: a key holder lost before decrypting)."""
    ROUNDS.labels(job.metadata.name, "retried").inc()


def update_decided(
    job: FederatedJob, silo: str, accepted: bool, codes: Iterable[str], seconds_since_open: float | None
) -> None:
    """One decision on an update; ``seconds_since_open`` is None when no round was open for it."""
    name = job.metadata.name
    DECISIONS.labels(name, "allow" if accepted else "deny").inc()
    label = _silo_label(job, silo)
    if seconds_since_open is not None and label != UNENROLLED:
        SILO_UPDATE_SECONDS.labels(name, label).observe(seconds_since_open)
    if not accepted:
        for code in dict.fromkeys(codes):
            DENIALS.labels(name, label, code if code in _KNOWN_REASONS else "other").inc()


def round_recorded(job: FederatedJob, summary: RoundSummary) -> None:
    """A round closed and its model is stored: its duration, each silo's outcome, bytes, epsilon, divergence."""
    name = job.metadata.name
    ROUNDS.labels(name, "void" if summary.void is not None else "completed").inc()
    ROUND_SECONDS.labels(name).observe(summary.seconds)
    JOB_PROGRESS.labels(name).set(time.time())
    for silo in summary.participants:
        outcome = "accepted" if silo in summary.accepted else "denied" if silo in summary.denied else "dropped"
        SILO_ROUNDS.labels(name, _silo_label(job, silo), outcome).inc()
    ceilings = [c for c in (job.spec.policy.max_epsilon, job.spec.privacy.target_epsilon) if c is not None]
    for silo, stats in summary.silos.items():
        label = _silo_label(job, silo)
        BYTES.labels(name, label, "up").inc(stats.bytes_up)
        BYTES.labels(name, label, "down").inc(stats.bytes_down)
        if stats.epsilon_spent is not None:
            EPSILON.labels(name, label).set(stats.epsilon_spent)
            if ceilings:
                EPSILON_REMAINING.labels(name, label).set(max(0.0, min(ceilings) - stats.epsilon_spent))
        if stats.update_distance is not None:
            DIVERGENCE.labels(name, label).set(stats.update_distance)
        if stats.update_cosine is not None:
            COSINE.labels(name, label).set(stats.update_cosine)


def model_scored(job: FederatedJob, quality: ModelQuality) -> None:
    """The silos' signed scores of one round's model: each silo's accuracy, the mean and the spread.

    The one place that turns the silos' evaluation claims into metrics.
    """
    name = job.metadata.name
    for silo, score in quality.silos.items():
        SILO_ACCURACY.labels(name, _silo_label(job, silo)).set(score.accuracy)
    MODEL_ACCURACY.labels(name).set(quality.mean_accuracy)
    accuracies = [score.accuracy for score in quality.silos.values()]
    ACCURACY_SPREAD.labels(name).set(max(accuracies) - min(accuracies))
    EVALUATED_ROUND.labels(name).set(quality.round)
