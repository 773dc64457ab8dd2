"""What the operator records into the telemetry catalog: reconciles by resource, and each job's figures.

The handlers count every reconcile by outcome; the hub role mirrors each job's round,
denials and per-silo epsilon from its status, so one scrape of the operator shows every
job. ``run_operator`` serves the default registry on ``--metrics-port``. The aggregator
exports its own, finer figures (bytes per silo, decisions by outcome). Every metric is
defined once, in ``fedsilo.telemetry``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import kopf

from fedsilo.telemetry import JOB_DENIALS, JOB_EPSILON, JOB_ROUND, RECONCILE_SECONDS, RECONCILES


@contextmanager
def measured(resource: str, handler: str) -> Iterator[None]:
    """Time a reconcile and count it by how it ended."""
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    except kopf.TemporaryError:
        outcome = "waiting"
        raise
    except kopf.PermanentError:
        outcome = "invalid"
        raise
    finally:
        RECONCILES.labels(resource, handler, outcome).inc()
        RECONCILE_SECONDS.labels(resource, handler).observe(time.perf_counter() - started)


def record_job_figures(namespace: str, job: str, status: Mapping[str, Any]) -> None:
    """Mirror the aggregator's figures from a job's status."""
    if status.get("round") is not None:
        JOB_ROUND.labels(namespace, job).set(status["round"])
    if status.get("denials") is not None:
        JOB_DENIALS.labels(namespace, job).set(status["denials"])
    for silo, spent in (status.get("epsilon") or {}).items():
        JOB_EPSILON.labels(namespace, job, silo).set(spent)


def forget_job(namespace: str, job: str, silos: Iterable[str]) -> None:
    """Drop a deleted job's series, so dashboards do not show it forever."""
    for gauge in (JOB_ROUND, JOB_DENIALS):
        with suppress(KeyError):
            gauge.remove(namespace, job)
    for silo in silos:
        with suppress(KeyError):
            JOB_EPSILON.remove(namespace, job, silo)
