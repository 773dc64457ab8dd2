"""Shared by the telemetry tests: the monitoring files and a reader of Prometheus' text format."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "fedsilo-rules.yaml"
RULE_TESTS = MONITORING / "fedsilo-rules.test.yaml"
DASHBOARD = MONITORING / "fedsilo-dashboard.json"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample a real GET of http://127.0.0.1:PORT/metrics shows, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sample ``name`` with exactly ``labels``, or None if the scrape had none."""
    return samples.get((name, frozenset(labels.items())))
