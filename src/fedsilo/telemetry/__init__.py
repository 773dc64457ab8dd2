"""Telemetry: the one catalog of Prometheus metrics the aggregator and the operator export.

The services import the metric objects and record into them; ``scripts/generate`` renders
``docs/metrics.md`` from :data:`CATALOG` and the dashboard from the names in it.
"""

from ._catalog import ACCURACY_SPREAD as ACCURACY_SPREAD
from ._catalog import BYTES as BYTES
from ._catalog import CATALOG as CATALOG
from ._catalog import CONSENT_REFUSALS as CONSENT_REFUSALS
from ._catalog import COSINE as COSINE
from ._catalog import DECISIONS as DECISIONS
from ._catalog import DENIALS as DENIALS
from ._catalog import DIVERGENCE as DIVERGENCE
from ._catalog import EPSILON as EPSILON
from ._catalog import EPSILON_REMAINING as EPSILON_REMAINING
from ._catalog import EVALUATED_ROUND as EVALUATED_ROUND
from ._catalog import JOB_DENIALS as JOB_DENIALS
from ._catalog import JOB_EPSILON as JOB_EPSILON
from ._catalog import JOB_PROGRESS as JOB_PROGRESS
from ._catalog import JOB_ROUND as JOB_ROUND
from ._catalog import JOB_RUNNING as JOB_RUNNING
from ._catalog import MODEL_ACCURACY as MODEL_ACCURACY
from ._catalog import RECONCILE_SECONDS as RECONCILE_SECONDS
from ._catalog import RECONCILES as RECONCILES
from ._catalog import ROUND_SECONDS as ROUND_SECONDS
from ._catalog import ROUNDS as ROUNDS
from ._catalog import SILO_ACCURACY as SILO_ACCURACY
from ._catalog import SILO_ROUNDS as SILO_ROUNDS
from ._catalog import SILO_UPDATE_SECONDS as SILO_UPDATE_SECONDS
from ._catalog import MetricSpec as MetricSpec
from ._docs import metrics_table as metrics_table

__all__ = [
    "ACCURACY_SPREAD",
    "BYTES",
    "CATALOG",
    "CONSENT_REFUSALS",
    "COSINE",
    "DECISIONS",
    "DENIALS",
    "DIVERGENCE",
    "EPSILON",
    "EPSILON_REMAINING",
    "EVALUATED_ROUND",
    "JOB_DENIALS",
    "JOB_EPSILON",
    "JOB_PROGRESS",
    "JOB_ROUND",
    "JOB_RUNNING",
    "MODEL_ACCURACY",
    "RECONCILES",
    "RECONCILE_SECONDS",
    "ROUNDS",
    "ROUND_SECONDS",
    "SILO_ACCURACY",
    "SILO_ROUNDS",
    "SILO_UPDATE_SECONDS",
    "MetricSpec",
    "metrics_table",
]
