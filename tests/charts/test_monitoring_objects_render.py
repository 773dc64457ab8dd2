"""The hub chart installs the alert rules and the dashboard that deploy/monitoring holds, as asked:
a plain ConfigMap by default or a PrometheusRule, and a dashboard ConfigMap with the sidecar's label."""

from __future__ import annotations

import json

import yaml

from .conftest import CI, HUB_CHART, ROOT, Helm

MONITORING = ROOT / "deploy" / "monitoring"


def test_monitoring_objects_are_off_by_default(helm: Helm) -> None:
    objects = helm.render(HUB_CHART)
    names = {item["metadata"]["name"] for item in objects}
    assert not {"t-fedsilo-rules", "t-fedsilo-dashboard"} & names
    assert not objects.of("PrometheusRule")


def test_rules_render_as_a_configmap_holding_the_tested_rule_file(helm: Helm) -> None:
    objects = helm.render(HUB_CHART, sets=["monitoring.rules.enabled=true"])
    (rules,) = [c for c in objects.of("ConfigMap") if c["metadata"]["name"] == "t-fedsilo-rules"]
    assert rules["data"]["fedsilo-rules.yaml"] == (MONITORING / "fedsilo-rules.yaml").read_text()


def test_rules_render_as_a_prometheusrule_with_the_selector_labels(helm: Helm) -> None:
    objects = helm.render(HUB_CHART, CI[HUB_CHART] / "monitoring-values.yaml")
    rule = objects.one("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == yaml.safe_load((MONITORING / "fedsilo-rules.yaml").read_text())


def test_the_dashboard_renders_for_the_grafana_sidecar(helm: Helm) -> None:
    objects = helm.render(
        HUB_CHART, CI[HUB_CHART] / "monitoring-values.yaml", sets=["monitoring.dashboard.sidecarLabel=dashboards"]
    )
    (dashboard,) = [c for c in objects.of("ConfigMap") if c["metadata"]["name"] == "t-fedsilo-dashboard"]
    assert dashboard["metadata"]["labels"]["dashboards"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "fedsilo"}
    shown = json.loads(dashboard["data"]["fedsilo-dashboard.json"])
    assert shown == json.loads((MONITORING / "fedsilo-dashboard.json").read_text())


def test_an_unknown_rules_kind_is_refused_naming_the_value(helm: Helm) -> None:
    result = helm.template(HUB_CHART, sets=["monitoring.rules.kind=ServiceMonitor"], check=False)
    assert result.returncode != 0
    assert "/monitoring/rules/kind" in result.stderr and "'ConfigMap', 'PrometheusRule'" in result.stderr
