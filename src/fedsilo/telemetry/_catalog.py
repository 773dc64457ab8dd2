"""Every Prometheus metric fedsilo exports, defined once: name, type, labels, help, buckets.

The aggregator (``fedsilo.aggregator._metrics``) and the operator (``fedsilo.operator._metrics``)
import the metric objects from here; ``docs/metrics.md`` is rendered from :data:`CATALOG` by
``scripts/generate`` (:func:`fedsilo.telemetry.metrics_table`), and the alert rules and the
dashboard (``deploy/monitoring``) query these names, which tests/telemetry checks. Names
follow Prometheus' conventions: the unit in the name (``_seconds``, ``_bytes``, ``_ratio``),
``_total`` on counters (prometheus_client appends it), histograms for durations.

Cardinality is bounded by construction: ``job`` and ``silo`` values come from validated
FederatedJob specs (DNS labels, at most 1000 silos a job; the aggregator labels only silos
the job names), ``reason`` from :class:`fedsilo.policy.Reason` (anything else a custom
policy says is counted as ``other``), and the other labels from the fixed sets their help
lists. No label ever holds a payload, a digest or free text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from prometheus_client import Counter, Gauge, Histogram

Kind = Literal["counter", "gauge", "histogram"]

#: Seconds a round or an update may take: a second to the operator's longest round timeout.
ROUND_BUCKETS: Final = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
#: Seconds one reconcile takes.
RECONCILE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True)
class MetricSpec:
    """One metric as documented: what it is called on /metrics, its type, labels and meaning."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str
    exporter: Literal["aggregator", "operator"]
    buckets: tuple[float, ...] = ()

    @property
    def exposed(self) -> str:
        """The sample name a scrape shows: counters get ``_total``, histograms ``_bucket`` and friends."""
        return f"{self.name}_total" if self.kind == "counter" else self.name


CATALOG: list[MetricSpec] = []


def _define(spec: MetricSpec) -> MetricSpec:
    CATALOG.append(spec)
    return spec


def _counter(spec: MetricSpec) -> Counter:
    return Counter(_define(spec).name, spec.help, spec.labels)


def _gauge(spec: MetricSpec) -> Gauge:
    return Gauge(_define(spec).name, spec.help, spec.labels)


def _histogram(spec: MetricSpec) -> Histogram:
    return Histogram(_define(spec).name, spec.help, spec.labels, buckets=spec.buckets)


# ----- the aggregator: one job's rounds, per silo ----------------------------------------

ROUNDS = _counter(
    MetricSpec(
        "fedsilo_rounds",
        "counter",
        ("job", "outcome"),
        "Rounds closed, by outcome (completed; void: the sum broke the signed bounds; retried; failed).",
        "aggregator",
    )
)
ROUND_SECONDS = _histogram(
    MetricSpec(
        "fedsilo_round_duration_seconds",
        "histogram",
        ("job",),
        "Time from a round's opening to its model being stored.",
        "aggregator",
        ROUND_BUCKETS,
    )
)
SILO_UPDATE_SECONDS = _histogram(
    MetricSpec(
        "fedsilo_silo_update_latency_seconds",
        "histogram",
        ("job", "silo"),
        "Time from a round's opening to the decision on the silo's update; the straggler index is "
        "this histogram's p99 over its p50 (recording rule fedsilo:silo_update_latency_seconds:p99_over_p50).",
        "aggregator",
        ROUND_BUCKETS,
    )
)
SILO_ROUNDS = _counter(
    MetricSpec(
        "fedsilo_silo_rounds",
        "counter",
        ("job", "silo", "outcome"),
        "Rounds each silo was asked to join, by what became of its update (accepted, denied, dropped: "
        "none arrived in time); the drop rate is dropped over all.",
        "aggregator",
    )
)
BYTES = _counter(
    MetricSpec(
        "fedsilo_silo_bytes",
        "counter",
        ("job", "silo", "direction"),
        "Bytes exchanged with each silo (direction: up to the hub, down to the silo).",
        "aggregator",
    )
)
DECISIONS = _counter(
    MetricSpec(
        "fedsilo_policy_decisions",
        "counter",
        ("job", "outcome"),
        "Decisions on updates, by outcome (allow, deny).",
        "aggregator",
    )
)
DENIALS = _counter(
    MetricSpec(
        "fedsilo_update_denials",
        "counter",
        ("job", "silo", "reason"),
        "Denied updates by silo and reason code (fedsilo.policy.Reason; other for a custom policy's own "
        "codes). One denial with several reasons counts once under each.",
        "aggregator",
    )
)
EPSILON = _gauge(
    MetricSpec(
        "fedsilo_silo_epsilon",
        "gauge",
        ("job", "silo"),
        "Epsilon the silo has spent in the job (hub ledger).",
        "aggregator",
    )
)
EPSILON_REMAINING = _gauge(
    MetricSpec(
        "fedsilo_silo_epsilon_remaining",
        "gauge",
        ("job", "silo"),
        "Epsilon the silo may still spend in the job: the lower of the job's policy.maxEpsilon and "
        "privacy.targetEpsilon, less what it spent here (absent when the job sets neither).",
        "aggregator",
    )
)
SILO_ACCURACY = _gauge(
    MetricSpec(
        "fedsilo_silo_model_accuracy_ratio",
        "gauge",
        ("job", "silo"),
        "Accuracy of the latest global model on each silo's own data, from the silo's signed evaluation report.",
        "aggregator",
    )
)
MODEL_ACCURACY = _gauge(
    MetricSpec(
        "fedsilo_model_accuracy_ratio",
        "gauge",
        ("job",),
        "Record-weighted mean accuracy of the latest global model over the silos' signed evaluation reports.",
        "aggregator",
    )
)
ACCURACY_SPREAD = _gauge(
    MetricSpec(
        "fedsilo_model_accuracy_spread_ratio",
        "gauge",
        ("job",),
        "Cohort fairness: best minus worst silo accuracy of the latest global model (signed reports).",
        "aggregator",
    )
)
EVALUATED_ROUND = _gauge(
    MetricSpec(
        "fedsilo_model_evaluated_round",
        "gauge",
        ("job",),
        "The round whose global model the accuracy gauges describe.",
        "aggregator",
    )
)
DIVERGENCE = _gauge(
    MetricSpec(
        "fedsilo_silo_update_distance",
        "gauge",
        ("job", "silo"),
        "Model divergence: L2 distance from the silo's last admitted update to the step the global model "
        "took. Plain mode only, where the hub sees each update; a masked job never exports it from the "
        "payload (the hub sees only the sum), only from the silo's signed claims where it sends them.",
        "aggregator",
    )
)
COSINE = _gauge(
    MetricSpec(
        "fedsilo_silo_update_cosine",
        "gauge",
        ("job", "silo"),
        "Cosine of the angle between the silo's last admitted update and the global model's step "
        "(plain mode only, as fedsilo_silo_update_distance).",
        "aggregator",
    )
)
JOB_RUNNING = _gauge(
    MetricSpec(
        "fedsilo_job_running",
        "gauge",
        ("job",),
        "1 while the aggregator runs the job's rounds, 0 once it finished or failed.",
        "aggregator",
    )
)
JOB_PROGRESS = _gauge(
    MetricSpec(
        "fedsilo_job_last_progress_timestamp_seconds",
        "gauge",
        ("job",),
        "Unix time the job last made progress (started, or closed a round); a stalled job stops moving it.",
        "aggregator",
    )
)

# ----- the operator: reconciles, and each job's figures from its status -----------------

RECONCILES = _counter(
    MetricSpec(
        "fedsilo_operator_reconciles",
        "counter",
        ("resource", "handler", "outcome"),
        "Reconciles by resource, handler and outcome (ok, waiting, invalid, error).",
        "operator",
    )
)
RECONCILE_SECONDS = _histogram(
    MetricSpec(
        "fedsilo_operator_reconcile_seconds",
        "histogram",
        ("resource", "handler"),
        "Time spent in one reconcile.",
        "operator",
        RECONCILE_BUCKETS,
    )
)
JOB_ROUND = _gauge(
    MetricSpec(
        "fedsilo_operator_job_round", "gauge", ("namespace", "job"), "Last completed round of each job.", "operator"
    )
)
JOB_DENIALS = _gauge(
    MetricSpec(
        "fedsilo_operator_job_denials",
        "gauge",
        ("namespace", "job"),
        "Updates denied by policy in each job.",
        "operator",
    )
)
JOB_EPSILON = _gauge(
    MetricSpec(
        "fedsilo_operator_job_epsilon",
        "gauge",
        ("namespace", "job", "silo"),
        "Epsilon each silo spent in each job.",
        "operator",
    )
)
CONSENT_REFUSALS = _counter(
    MetricSpec(
        "fedsilo_operator_consent_refusals",
        "counter",
        ("role", "missing"),
        "Jobs refused because a silo named in them has not consented (role: hub, silo; missing: "
        "dataClass, purpose, jobName).",
        "operator",
    )
)
