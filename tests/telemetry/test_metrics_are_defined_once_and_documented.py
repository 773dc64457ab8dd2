"""The catalog is the one definition: names follow Prometheus' conventions, docs/metrics.md and the
rules and dashboard name only what the catalog defines, and every label set is bounded."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from prometheus_client import REGISTRY

from fedsilo.telemetry import CATALOG, metrics_table

from .conftest import DASHBOARD, ROOT, RULES

_BOUNDED_LABELS = {
    "job",
    "silo",
    "namespace",
    "outcome",
    "direction",
    "reason",
    "resource",
    "handler",
    "role",
    "missing",
}


def _exposed_names() -> set[str]:
    names = set()
    for spec in CATALOG:
        if spec.kind == "histogram":
            names |= {f"{spec.name}_bucket", f"{spec.name}_count", f"{spec.name}_sum"}
        else:
            names.add(spec.exposed)
    return names


def _recorded() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def _names_in(text: str) -> set[str]:
    return set(re.findall(r"\bfedsilo(?::|_)[a-z0-9_:]+", text)) - {"fedsilo_"}


def test_metric_names_follow_prometheus_conventions() -> None:
    names = [spec.name for spec in CATALOG]
    assert len(names) == len(set(names)), "a metric is defined twice"
    for spec in CATALOG:
        assert re.fullmatch(r"fedsilo_[a-z0-9_]+", spec.name), spec.name
        assert not spec.name.endswith("_total"), f"{spec.name}: prometheus_client adds _total to counters"
        if spec.kind == "histogram":
            assert spec.name.endswith("_seconds"), f"{spec.name}: durations are histograms in seconds"
            assert spec.buckets
        assert spec.help.endswith(".") or spec.help.endswith(")"), spec.name


def test_every_label_comes_from_a_bounded_set() -> None:
    for spec in CATALOG:
        assert set(spec.labels) <= _BOUNDED_LABELS, f"{spec.name} has an unbounded label"


def test_the_registry_serves_each_catalog_metric_with_its_documented_help() -> None:
    registered = {metric.name: metric for metric in REGISTRY.collect()}
    for spec in CATALOG:
        family = spec.name  # the registry names a counter's family without _total
        assert family in registered, spec.name
        assert registered[family].documentation == spec.help
        assert registered[family].type == spec.kind


def test_the_metrics_page_is_the_rendering_of_the_catalog() -> None:
    assert (ROOT / "docs" / "metrics.md").read_text() == metrics_table()
    for spec in CATALOG:
        assert f"`{spec.exposed}`" in metrics_table()


def test_the_masked_mode_divergence_is_said_to_come_from_signed_claims_only() -> None:
    (divergence,) = [spec for spec in CATALOG if spec.name == "fedsilo_silo_update_distance"]
    assert "masked" in divergence.help and "signed claims" in divergence.help


@pytest.mark.parametrize("source", [RULES, DASHBOARD], ids=lambda p: p.name)
def test_rules_and_dashboard_query_only_defined_metrics(source: object) -> None:
    text = RULES.read_text() if source == RULES else json.dumps(json.loads(DASHBOARD.read_text()))
    unknown = _names_in(text) - _exposed_names() - _recorded()
    assert not unknown, f"{source} queries metrics nobody exports: {sorted(unknown)}"


def test_the_dashboard_shows_the_figures_the_issue_asks_for() -> None:
    queried = _names_in(json.dumps(json.loads(DASHBOARD.read_text())))
    for name in (
        "fedsilo:silo_drop_ratio:rate1h",
        "fedsilo:silo_update_latency_seconds:p99_over_p50",
        "fedsilo_silo_bytes_total",
        "fedsilo_update_denials_total",
        "fedsilo_silo_epsilon",
        "fedsilo_silo_epsilon_remaining",
        "fedsilo_silo_model_accuracy_ratio",
        "fedsilo_model_accuracy_spread_ratio",
        "fedsilo_silo_update_distance",
    ):
        assert name in queried, name
