"""Prometheus metrics of the aggregator: rounds, decisions by outcome, bytes and epsilon per silo.

The coordinator updates them as it goes; ``fedsilo aggregator --metrics-port`` (in a cluster)
serves the default registry. Metrics carry only names and counts, never payloads.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ROUNDS = Counter("fedsilo_rounds_total", "Rounds closed, by outcome.", ["job", "outcome"])
DECISIONS = Counter("fedsilo_policy_decisions_total", "Policy decisions on updates, by outcome.", ["job", "outcome"])
BYTES = Counter("fedsilo_silo_bytes_total", "Bytes exchanged with each silo.", ["job", "silo", "direction"])
EPSILON = Gauge("fedsilo_silo_epsilon", "Epsilon the silo has spent in the job (hub ledger).", ["job", "silo"])
