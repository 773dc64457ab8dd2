"""What a run reports: per-round results as a table, a PNG plot, and JSON for machines.

Built by the local run from the aggregator's round summaries and the centralized
baseline; ``--json`` prints ``RunReport.to_json()``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from fedsilo.aggregator import RoundSummary

#: In the run directory: the report as JSON (what ``--json`` prints).
REPORT_FILE = "report.json"


@dataclass(frozen=True)
class RoundRow:
    """One round as people and machines read it."""

    round: int
    loss: float | None
    accuracy: float | None
    participants: list[str]
    accepted: list[str]
    dropped: list[str]
    denied: dict[str, list[str]]
    seconds: float
    bytes_up: dict[str, int]
    bytes_down: dict[str, int]
    # The update payload alone (the bytes compression shrinks), within bytes_up.
    payload_up: dict[str, int]
    # Epsilon of this round's update alone, and the silo's epsilon in the job after it (hub ledger).
    epsilon: dict[str, float | None]
    epsilon_spent: dict[str, float | None]
    model_digest: str
    # Plain mode: each accepted update's L2 distance and cosine to the step the model took (anomaly signal).
    update_distance: dict[str, float] = field(default_factory=dict)
    update_cosine: dict[str, float | None] = field(default_factory=dict)
    # Each silo's anomaly score over rounds once this round was folded in (docs/robustness.md).
    anomaly_score: dict[str, float] = field(default_factory=dict)
    # Why the round's sum was not applied (it broke the signed bounds; the model stayed); None when it counted.
    void: str | None = None
    # Each silo's signed score of this round's model, the worst silo and the spread (population sd).
    silo_accuracy: dict[str, float] = field(default_factory=dict)
    worst_silo: str | None = None
    worst_accuracy: float | None = None
    accuracy_std: float | None = None
    # The closing evaluation of a job that fine-tunes: each silo's score after fine-tuning.
    personalized_accuracy: dict[str, float] = field(default_factory=dict)
    # The round's compression (bits, word_bits, subset_size, top_k) and why that level; None: uncompressed.
    compression: dict[str, Any] | None = None
    # The masked round's neighbour graph (kind, degree, threshold, seed, bound); None in other modes.
    graph: dict[str, Any] | None = None
    # Silos that left during the round (their sidecar stopped and said so) and the reason each gave.
    left: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, summary: RoundSummary) -> RoundRow:
        """A row from the aggregator's summary."""
        quality = summary.quality
        return cls(
            round=summary.round,
            loss=summary.loss,
            accuracy=summary.accuracy,
            participants=list(summary.participants),
            accepted=list(summary.accepted),
            dropped=list(summary.dropped),
            denied={k: list(v) for k, v in summary.denied.items()},
            seconds=round(summary.seconds, 3),
            bytes_up={s: v.bytes_up for s, v in summary.silos.items()},
            bytes_down={s: v.bytes_down for s, v in summary.silos.items()},
            payload_up={s: v.upload_bytes for s, v in summary.silos.items()},
            epsilon={s: v.epsilon_round for s, v in summary.silos.items()},
            epsilon_spent={s: v.epsilon_spent for s, v in summary.silos.items()},
            model_digest=summary.model_digest,
            update_distance={s: v.update_distance for s, v in summary.silos.items() if v.update_distance is not None},
            update_cosine={s: v.update_cosine for s, v in summary.silos.items() if v.update_distance is not None},
            anomaly_score={s: v.anomaly_score for s, v in summary.silos.items() if v.anomaly_score is not None},
            void=summary.void,
            silo_accuracy=quality.accuracies() if quality else {},
            worst_silo=quality.worst_silo if quality else None,
            worst_accuracy=quality.worst_accuracy if quality else None,
            accuracy_std=quality.accuracy_std if quality else None,
            personalized_accuracy=summary.personalized.accuracies() if summary.personalized else {},
            compression=None
            if summary.compression is None
            else {
                "bits": summary.compression.bits,
                "word_bits": summary.compression.word_bits,
                "subset_size": summary.compression.subset_size,
                "top_k": summary.compression.top_k,
                "reason": summary.compression_reason,
            },
            graph=dict(summary.graph) if summary.graph is not None else None,
            left=dict(summary.left),
        )


@dataclass(frozen=True)
class HubRestart:
    """One restart of a run's hub after its process died: the report lists them."""

    restart: int
    cause: str
    died_at: str
    #: The round the restarted hub goes on after (its newest checkpoint's).
    resumed_after: int | None = None
    #: Seconds from the death being noticed to the restarted hub listening again.
    seconds_down: float | None = None
    #: The port the restarted hub serves /metrics on (the first hub's), None without /metrics.
    metrics_port: int | None = None


@dataclass
class RunReport:
    """The outcome of ``fedsilo run``."""

    job: str
    status: str
    aggregation: str
    strategy: str
    isolation: str
    workdir: str
    rounds: list[RoundRow] = field(default_factory=list)
    centralized_accuracy: float | None = None
    centralized_loss: float | None = None
    failure: str = ""
    plot: str | None = None
    privacy_plot: str | None = None
    ledgers: str | None = None
    # The statistics phase's released statistics (jobs with spec.data.preprocessing).
    statistics: str | None = None
    # A statistics-only job (spec.rounds 0): the statistics are the result, and no round was trained.
    statistics_only: bool = False
    # What the hub's ledger charged each counted silo for a private statistics release (its epsilon in
    # the run after it): where every silo's epsilon starts before round 1.
    statistics_epsilon: dict[str, float] = field(default_factory=dict)
    denials: dict[str, int] = field(default_factory=dict)
    # Each time the hub process died and the runner restarted it from its newest checkpoint.
    hub_restarts: list[HubRestart] = field(default_factory=list)

    @property
    def private(self) -> bool:
        """Some update, or the statistics release, was charged for differential privacy."""
        return bool(self.statistics_epsilon) or any(
            v is not None for row in self.rounds for v in row.epsilon_spent.values()
        )

    def cumulative_epsilon(self) -> list[dict[str, float]]:
        """Each round's epsilon spent per silo so far (a silo keeps its figure in rounds it sat out).

        The rounds' figures are the hub ledger's composed totals, the statistics release included;
        a job trained without DP keeps the statistics' figures.
        """
        spent: dict[str, float] = dict(self.statistics_epsilon)
        out = []
        for row in self.rounds:
            spent |= {s: v for s, v in row.epsilon_spent.items() if v is not None}
            out.append(dict(spent))
        return out

    @property
    def final_accuracy(self) -> float | None:
        """Accuracy of the last model, from the closing federated evaluation."""
        scored = [r.accuracy for r in self.rounds if r.accuracy is not None]
        return scored[-1] if scored else None

    def personalization(self) -> dict[str, dict[str, float]]:
        """Each silo's accuracy before (the federated model) and after fine-tuning; empty without fine-tuning."""
        last = next((r for r in reversed(self.rounds) if r.personalized_accuracy), None)
        if last is None:
            return {}
        return {
            silo: {"before": last.silo_accuracy[silo], "after": after}
            for silo, after in last.personalized_accuracy.items()
            if silo in last.silo_accuracy
        }

    @property
    def path(self) -> Path:
        """Where the local run wrote this report."""
        return Path(self.workdir) / REPORT_FILE

    def to_json(self) -> str:
        """The whole report as JSON."""
        document: dict[str, Any] = asdict(self)
        document["final_accuracy"] = self.final_accuracy
        if self.private:
            document["epsilon_spent"] = (self.cumulative_epsilon() or [dict(self.statistics_epsilon)])[-1]
        if self.final_accuracy is not None and self.centralized_accuracy:
            document["accuracy_vs_centralized"] = self.final_accuracy / self.centralized_accuracy
        scored = [r for r in self.rounds if r.worst_silo is not None]
        if scored:
            document["final_worst_silo"] = scored[-1].worst_silo
            document["final_worst_accuracy"] = scored[-1].worst_accuracy
            document["final_accuracy_std"] = scored[-1].accuracy_std
        if personalization := self.personalization():
            document["personalization"] = personalization
        return json.dumps(document, indent=2, sort_keys=True)


def _kib(value: int) -> str:
    return f"{value / 1024:,.0f}"


def render_table(report: RunReport) -> Table:
    """Round, loss, accuracy, participants and traffic per silo."""
    silos = sorted({s for row in report.rounds for s in row.participants})
    table = Table(title=f"{report.job}: {report.strategy}, {report.aggregation} aggregation", show_lines=False)
    table.add_column("round", justify="right")
    table.add_column("loss", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("worst silo", justify="right")
    table.add_column("sd", justify="right")
    table.add_column("accepted", justify="right")
    table.add_column("denied / dropped / left")
    for silo in silos:
        table.add_column(f"{silo}\nKiB up/down", justify="right")
    private = report.private
    if private:
        for silo in silos:
            table.add_column(f"{silo}\nepsilon", justify="right")
    for row, spent in zip(report.rounds, report.cumulative_epsilon(), strict=True):
        problems = (
            [f"{s}: denied" for s in row.denied]
            + [f"{s}: dropped" for s in row.dropped if s not in row.left]
            + [f"{s}: left" for s in row.left]
        )
        epsilons = [f"{spent[s]:.3f}" if s in spent else "-" for s in silos] if private else []
        table.add_row(
            str(row.round),
            "-" if row.loss is None else f"{row.loss:.4f}",
            "-" if row.accuracy is None else f"{row.accuracy:.4f}",
            "-" if row.worst_accuracy is None else f"{row.worst_silo}: {row.worst_accuracy:.4f}",
            "-" if row.accuracy_std is None else f"{row.accuracy_std:.4f}",
            f"{len(row.accepted)}/{len(row.participants)}",
            ", ".join(problems) or "-",
            *[
                f"{_kib(row.bytes_up.get(s, 0))}/{_kib(row.bytes_down.get(s, 0))}" if s in row.participants else "-"
                for s in silos
            ],
            *epsilons,
        )
    if report.centralized_accuracy is not None:
        table.caption = f"centralized baseline accuracy {report.centralized_accuracy:.4f}" + (
            f"; federated reaches {report.final_accuracy / report.centralized_accuracy:.1%} of it"
            if report.final_accuracy is not None and report.centralized_accuracy
            else ""
        )
    return table


def render_silo_quality(report: RunReport) -> Table | None:
    """Each silo's accuracy of the final model, and after fine-tuning when the job fine-tunes; None if unscored."""
    last = next((r for r in reversed(report.rounds) if r.silo_accuracy), None)
    if last is None:
        return None
    personalization = report.personalization()
    table = Table(title=f"{report.job}: accuracy per silo (round {last.round}'s model, held-out splits)")
    table.add_column("silo")
    table.add_column("federated model", justify="right")
    if personalization:
        table.add_column("after fine-tuning", justify="right")
        table.add_column("change", justify="right")
    for silo, accuracy in last.silo_accuracy.items():
        cells = [silo, f"{accuracy:.4f}"]
        if personalization:
            tuned = personalization.get(silo, {}).get("after")
            cells += ["-", "-"] if tuned is None else [f"{tuned:.4f}", f"{tuned - accuracy:+.4f}"]
        table.add_row(*cells)
    if personalization:
        before = [v["before"] for v in personalization.values()]
        after = [v["after"] for v in personalization.values()]
        table.caption = (
            f"worst silo {min(before):.4f} -> {min(after):.4f}; "
            f"unweighted mean {sum(before) / len(before):.4f} -> {sum(after) / len(after):.4f}"
        )
    return table


def _accuracy_plot(
    report: RunReport,
    path: Path,
    points: list[tuple[float, float]],
    *,
    label: str,
    baseline: str,
    x_label: str,
    title: str,
) -> Path:
    """Accuracy against ``x`` with the centralized baseline as a line: the shape both plots share."""
    # Imported here: matplotlib is slow to import and needs its headless backend chosen
    # before pyplot loads, which a library must not do to its callers at import time.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
    if points:
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    if report.centralized_accuracy is not None:
        axes.axhline(report.centralized_accuracy, color="gray", linestyle="--", label=baseline)
    axes.set_xlabel(x_label)
    if x_label == "round":
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("accuracy (held-out, all silos)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        # A job that failed before its first scored round, without a baseline, has nothing to name.
        axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def write_plot(report: RunReport, path: Path) -> Path:
    """Accuracy per round, with the centralized baseline as a horizontal line."""
    return _accuracy_plot(
        report,
        path,
        [(r.round, r.accuracy) for r in report.rounds if r.accuracy is not None],
        label=f"federated ({report.strategy}, {report.aggregation})",
        baseline="centralized baseline",
        x_label="round",
        title=f"fedsilo job {report.job}",
    )


def write_privacy_plot(report: RunReport, path: Path) -> Path:
    """Accuracy against the epsilon spent so far: the largest of the silos', round by round."""
    points = [
        (max(spent.values()), row.accuracy)
        for row, spent in zip(report.rounds, report.cumulative_epsilon(), strict=True)
        if row.accuracy is not None and spent
    ]
    return _accuracy_plot(
        report,
        path,
        points,
        label="federated, with DP",
        baseline="centralized, no DP",
        x_label="epsilon spent (largest silo, hub ledger)",
        title=f"fedsilo job {report.job}: accuracy vs privacy",
    )
