"""The aggregator's :class:`~fedsilo.api.StatusReporter` in a cluster: its job's status and Events.

The aggregator pod (``fedsilo aggregator``, :func:`fedsilo.runner.run_aggregator`) creates one with
:meth:`KubeStatusReporter.from_environment` and calls it after the statistics phase, every round and denial.
Why a status patch rather than the operator polling the aggregator: the figures arrive
when the round closes, no port of the aggregator has to admit the operator, and the grant
is narrow: the pod's ServiceAccount may patch ``federatedjobs/status`` of its own job
(``resourceNames``) and create Events, nothing else.

The reporter owns the round figures through server-side apply under its own field manager,
written through the :class:`~fedsilo.api.FederatedJobStatus` model (the CRD's own schema);
the operator owns ``phase``, ``conditions`` and ``endpoint``, so neither overwrites the other.
Every apply carries the reporter's whole state, because fields a manager leaves out of an
apply are removed; a lost report is therefore healed by the next one. Failures are logged,
never raised: the audit log is the record, the status a view of it, and a round must not
fail because the API server is briefly away.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import urllib3

from fedsilo.api import (
    API_VERSION,
    Denial,
    FederatedJobStatus,
    JobOutcome,
    JobResult,
    ModelQualityStatus,
    RoundReport,
    StatisticsStatus,
)

from ._access import load_access
from ._client import FEDERATED_JOB, ApiError, KubeApi, Object
from ._events import EventType, event

log = logging.getLogger(__name__)

FIELD_MANAGER = "fedsilo-aggregator"
COMPONENT = "aggregator"

#: Environment variables the operator sets in the aggregator pod.
JOB_NAME_VARIABLE = "FEDSILO_JOB_NAME"
JOB_NAMESPACE_VARIABLE = "FEDSILO_JOB_NAMESPACE"
JOB_UID_VARIABLE = "FEDSILO_JOB_UID"
POD_NAME_VARIABLE = "FEDSILO_POD_NAME"


class KubeStatusReporter:
    """Reports a job's progress to its FederatedJob status and as Events; thread-safe."""

    def __init__(self, api: KubeApi, job_name: str, namespace: str, job_uid: str, instance: str = "") -> None:
        self._api = api
        self._job: Object = {
            "apiVersion": API_VERSION,
            "kind": FEDERATED_JOB.kind,
            "metadata": {"name": job_name, "namespace": namespace, "uid": job_uid},
        }
        self._instance = instance
        self._status: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> KubeStatusReporter:
        """The reporter of the aggregator pod: job from the pod's environment, in-cluster credentials."""
        api = KubeApi(load_access(), FIELD_MANAGER)
        return cls(
            api,
            os.environ[JOB_NAME_VARIABLE],
            os.environ[JOB_NAMESPACE_VARIABLE],
            os.environ[JOB_UID_VARIABLE],
            os.environ.get(POD_NAME_VARIABLE, ""),
        )

    def round_completed(self, report: RoundReport) -> None:
        """Publish the round's figures and record a RoundCompleted event."""
        epsilon = {str(silo): float(spent) for silo, spent in sorted(report.epsilon_spent.items())}
        silos = len(report.participants) + len(report.dropouts)
        self._publish(
            FederatedJobStatus(
                round=int(report.round),
                participants=sorted(report.participants),
                dropouts=sorted(report.dropouts),
                left=sorted(report.left),
                participation=f"{len(report.participants)}/{silos}",
                denials=report.denials_total,
                epsilon=epsilon,
                max_epsilon_spent=max(epsilon.values(), default=0.0),
                anomaly_scores={str(silo): round(score, 3) for silo, score in sorted(report.anomaly_scores.items())}
                or None,
                latest_model=report.latest_model,
                evidence=report.evidence,
                compression=report.compression,
            )
        )
        if report.void is not None:
            self._event("RoundVoid", f"Round {report.round} is void, the model stays: {report.void}", "Warning")
            return
        model = f", model {report.latest_model.digest}" if report.latest_model else ""
        dropped = f"; dropped: {', '.join(sorted(report.dropouts))}" if report.dropouts else ""
        left = f"; left: {', '.join(sorted(report.left))}" if report.left else ""
        self._event(
            "RoundCompleted",
            f"Round {report.round}: {len(report.participants)}/{silos} silos accepted{dropped}{left}{model}",
            "Normal",
        )

    def model_evaluated(self, quality: ModelQualityStatus) -> None:
        """Publish the silos' scores of a model (each silo's accuracy, the worst silo, the spread) and an Event.

        The federated model's mean is also the job's ``accuracy``, the figure `kubectl get` shows.
        """
        status = FederatedJobStatus(quality=quality)
        if quality.stage == "global":
            status = FederatedJobStatus(quality=quality, accuracy=quality.mean_accuracy, accuracy_round=quality.round)
        self._publish(status)
        self._event(
            "ModelEvaluated",
            f"Round {quality.round}'s {quality.stage} model on the silos' data: accuracy {quality.mean_accuracy:.4f}, "
            f"worst silo {quality.worst_silo} at {quality.worst_accuracy:.4f}",
            "Normal",
        )

    def statistics_released(self, statistics: StatisticsStatus) -> None:
        """Publish the statistics phase's release and record a StatisticsReleased event.

        A private release's charges are each silo's first epsilon in the job: published in the job's
        ``epsilon`` (which the Silos' ``epsilonSpent`` sums) unless a round already published more.
        """
        status = FederatedJobStatus(statistics=statistics)
        if statistics.epsilon_spent:
            with self._lock:
                published = dict(self._status.get("epsilon") or {})
            epsilon = {
                silo: max(spent, float(published.get(silo, 0.0)))
                for silo, spent in {**published, **statistics.epsilon_spent}.items()
            }
            status = FederatedJobStatus(
                statistics=statistics, epsilon=epsilon, max_epsilon_spent=max(epsilon.values(), default=0.0)
            )
        self._publish(status)
        left_out = "; ".join(f"{silo} left out: {why}" for silo, why in sorted((statistics.excluded or {}).items()))
        privacy = f", epsilon {statistics.epsilon:g} charged to each silo" if statistics.epsilon is not None else ""
        self._event(
            "StatisticsReleased",
            f"Statistics of {len(statistics.silos)} silos over {statistics.features} features{privacy}; "
            f"every silo applies the {statistics.scaling} transform {statistics.preprocessing_digest}"
            + (f"; {left_out}" if left_out else ""),
            "Normal",
        )

    def update_denied(self, denial: Denial) -> None:
        """Record an UpdateDenied warning naming the silo and the policy's reasons."""
        reasons = "; ".join(denial.reasons) or "no reason given"
        self._event(
            "UpdateDenied",
            f"Round {denial.round}: update of silo {denial.silo} denied by policy {denial.policy_revision}: {reasons}",
            "Warning",
        )

    def job_finished(self, outcome: JobOutcome) -> None:
        """Publish the result; the operator turns it into the job's phase."""
        result = JobResult.SUCCEEDED if outcome.succeeded else JobResult.FAILED
        self._publish(FederatedJobStatus(result=result, message=outcome.message))
        self._event(
            f"Job{result.value}",
            f"After {outcome.rounds_completed} rounds: {outcome.message}",
            "Normal" if outcome.succeeded else "Warning",
        )

    def _publish(self, figures: FederatedJobStatus) -> None:
        # Only the fields this report sets: the reporter's state is the union of its reports.
        with self._lock:
            self._status.update(figures.model_dump(by_alias=True, exclude_none=True, mode="json"))
            patch = {**self._job, "metadata": _identity(self._job), "status": dict(self._status)}
            try:
                self._api.apply(patch, subresource="status")
            except (ApiError, urllib3.exceptions.HTTPError, OSError) as error:
                log.warning("could not publish the job status (the next report retries): %s", error)

    def _event(self, reason: str, message: str, type: EventType) -> None:
        try:
            self._api.create(
                event(
                    self._job, reason=reason, message=message, type=type, component=COMPONENT, instance=self._instance
                )
            )
        except (ApiError, urllib3.exceptions.HTTPError, OSError) as error:
            log.warning("could not record event %s: %s", reason, error)


def _identity(obj: Object) -> dict[str, Any]:
    """Name and namespace only: an apply must not try to set the uid."""
    meta = obj["metadata"]
    return {"name": meta["name"], "namespace": meta["namespace"]}
