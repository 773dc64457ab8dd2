"""The fedsilo Grafana dashboard, built with grafana-foundation-sdk (Grafana Labs' typed builders).

``scripts/generate`` writes ``deploy/monitoring/fedsilo-dashboard.json`` (and the hub chart's
copy) from :func:`dashboard_json`; ``--check`` fails when the committed JSON differs, so the
JSON is never edited by hand. Every query names metrics of ``fedsilo.telemetry``'s catalog or
recording rules of ``deploy/monitoring/fedsilo-rules.yaml``; tests/telemetry checks both.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard as DashboardBuilder
from grafana_foundation_sdk.builders.dashboard import DatasourceVariable, QueryVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

UID = "fedsilo-federated-jobs"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
#: Every query is restricted to the chosen jobs.
JOB = 'job=~"$job"'


def _panel(title: str, description: str, unit: str, *queries: tuple[str, str]) -> Timeseries:
    """One time-series panel: its queries as (PromQL, legend) pairs."""
    panel = Timeseries().title(title).description(description).unit(unit).datasource(DATASOURCE).span(12).height(8)
    for index, (expr, legend) in enumerate(queries):
        query = Dataquery().expr(expr).legend_format(legend).ref_id("ABCDEFGH"[index]).datasource(DATASOURCE)
        panel = panel.with_target(query)
    return panel


def build() -> DashboardBuilder:
    """The dashboard: rounds, silos, privacy and model quality of the chosen FederatedJobs."""
    return (
        DashboardBuilder("fedsilo: federated jobs")
        .uid(UID)
        .description("Rounds, silos, privacy budgets and model quality of fedsilo's federated jobs (docs/metrics.md).")
        .tags(["fedsilo", "federated-learning"])
        .refresh("1m")
        .time("now-6h", "now")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            QueryVariable("job")
            .label("Job")
            .datasource(DATASOURCE)
            .query("label_values(fedsilo_rounds_total, job)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
        )
        .with_row(Row("Rounds"))
        .with_panel(
            _panel(
                "Rounds closed",
                "Rounds completed and failed per hour.",
                "short",
                (f"sum by (job, outcome) (increase(fedsilo_rounds_total{{{JOB}}}[1h]))", "{{job}} {{outcome}}"),
            )
        )
        .with_panel(
            _panel(
                "Round duration",
                "p50 and p99 of the time from a round's opening to its stored model.",
                "s",
                (
                    f"histogram_quantile(0.5, sum by (job, le) (rate(fedsilo_round_duration_seconds_bucket{{{JOB}}}[1h])))",
                    "{{job}} p50",
                ),
                (
                    f"histogram_quantile(0.99, sum by (job, le) (rate(fedsilo_round_duration_seconds_bucket{{{JOB}}}[1h])))",
                    "{{job}} p99",
                ),
            )
        )
        .with_panel(
            _panel(
                "Straggler index",
                "p99 over p50 of the time silos take to deliver an update: 1 when all are alike.",
                "short",
                (f"fedsilo:silo_update_latency_seconds:p99_over_p50{{{JOB}}}", "{{job}}"),
            )
        )
        .with_panel(
            _panel(
                "Time since progress",
                "Seconds since the job last closed a round, while it runs (alert FedsiloJobStalled at 30 min).",
                "s",
                (
                    f"(time() - fedsilo_job_last_progress_timestamp_seconds{{{JOB}}}) and on (job) "
                    f"fedsilo_job_running{{{JOB}}} == 1",
                    "{{job}}",
                ),
            )
        )
        .with_row(Row("Silos"))
        .with_panel(
            _panel(
                "Drop rate per silo",
                "Share of its rounds in which the silo's update did not arrive in time (last hour).",
                "percentunit",
                (f"fedsilo:silo_drop_ratio:rate1h{{{JOB}}}", "{{job}} {{silo}}"),
            )
        )
        .with_panel(
            _panel(
                "Update latency per silo (p99)",
                "Time from a round's opening to the decision on the silo's update.",
                "s",
                (
                    "histogram_quantile(0.99, sum by (job, silo, le) "
                    f"(rate(fedsilo_silo_update_latency_seconds_bucket{{{JOB}}}[1h])))",
                    "{{job}} {{silo}}",
                ),
            )
        )
        .with_panel(
            _panel(
                "Traffic per silo",
                "Bytes per second to the hub (up) and to the silo (down).",
                "Bps",
                (
                    f"sum by (job, silo, direction) (rate(fedsilo_silo_bytes_total{{{JOB}}}[5m]))",
                    "{{silo}} {{direction}}",
                ),
            )
        )
        .with_panel(
            _panel(
                "Denials by reason",
                "Updates denied per hour, by silo and reason code (docs/policy-input.md).",
                "short",
                (
                    f"sum by (job, silo, reason) (increase(fedsilo_update_denials_total{{{JOB}}}[1h]))",
                    "{{silo}} {{reason}}",
                ),
            )
        )
        .with_row(Row("Privacy"))
        .with_panel(
            _panel(
                "Epsilon spent per silo",
                "The hub ledger's epsilon per silo in the job.",
                "short",
                (f"fedsilo_silo_epsilon{{{JOB}}}", "{{job}} {{silo}}"),
            )
        )
        .with_panel(
            _panel(
                "Epsilon remaining per silo",
                "Budget left under the job's ceiling (policy.maxEpsilon or privacy.targetEpsilon).",
                "short",
                (f"fedsilo_silo_epsilon_remaining{{{JOB}}}", "{{job}} {{silo}}"),
            )
        )
        .with_row(Row("Model quality"))
        .with_panel(
            _panel(
                "Accuracy of the global model",
                "Record-weighted mean of the silos' signed evaluations, and best minus worst silo (fairness).",
                "percentunit",
                (f"fedsilo_model_accuracy_ratio{{{JOB}}}", "{{job}} mean"),
                (f"fedsilo_model_accuracy_spread_ratio{{{JOB}}}", "{{job}} spread"),
            )
        )
        .with_panel(
            _panel(
                "Accuracy per silo",
                "The latest global model on each silo's own data (its signed evaluation).",
                "percentunit",
                (f"fedsilo_silo_model_accuracy_ratio{{{JOB}}}", "{{job}} {{silo}}"),
            )
        )
        .with_panel(
            _panel(
                "Update divergence per silo",
                "L2 distance from each silo's update to the model's step (plain mode only: a masked job's "
                "updates are never seen one by one).",
                "short",
                (f"fedsilo_silo_update_distance{{{JOB}}}", "{{job}} {{silo}}"),
            )
        )
    )


def dashboard_json() -> str:
    """The dashboard as the JSON Grafana imports, keys sorted so regeneration is stable."""
    return JSONEncoder(sort_keys=True, indent=2).encode(build().build()) + "\n"
