"""The statistics as people read them: a table for the terminal and a grid of histograms.

``fedsilo stats`` prints ``statistics_table`` and writes ``write_histograms``' PNG beside
the JSON; suppressed values show as ``-`` and suppressed bins are left empty.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from ._result import FederatedStatistics


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def statistics_table(statistics: FederatedStatistics) -> str:
    """One row per feature: count, missing, mean, std, min, quartiles, max; then categories and left-out silos."""
    header = ("feature", "count", "missing", "mean", "std", "min", "p25", "median", "p75", "max")
    rows = [header]
    for feature in statistics.numeric:
        quantiles = dict(feature.quantiles)
        std = None if feature.variance is None else math.sqrt(feature.variance)
        rows.append(
            (
                f"x{feature.column}",
                f"{feature.count:.0f}",
                f"{feature.missing:.0f}",
                _number(feature.mean),
                _number(std),
                _number(feature.min),
                _number(quantiles.get(0.25)),
                _number(quantiles.get(0.5)),
                _number(quantiles.get(0.75)),
                _number(feature.max),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    for category in statistics.categorical:
        shown = ", ".join(
            f"{code}: {count:.0f}" for code, count in sorted(category.counts.items(), key=lambda i: int(i[0]))
        )
        lines.append(
            f"x{category.column} (categorical): {shown or 'every code suppressed'}; {category.suppressed} suppressed"
        )
    privacy = statistics.privacy
    lines.append(
        f"{statistics.records:.0f} records from {len(statistics.silos)} silos; bins and categories under "
        f"{statistics.min_count} suppressed; "
        + (
            f"DP epsilon {privacy.epsilon:g} (delta {privacy.delta:g}, noise multiplier {privacy.noise_multiplier:.3g})"
            if privacy
            else "exact totals (no DP noise)"
        )
    )
    lines.extend(f"left out: {excluded.silo} ({excluded.reason})" for excluded in statistics.excluded)
    return "\n".join(lines)


def write_histograms(statistics: FederatedStatistics, path: Path) -> Path:
    """A grid of every numeric feature's released histogram (suppressed bins empty), as a PNG."""
    # Imported here: matplotlib is slow to import and needs its headless backend chosen first.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    features = statistics.numeric
    columns = min(4, max(len(features), 1))
    rows = max(math.ceil(len(features) / columns), 1)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
    for axis in axes.flat:
        axis.set_visible(False)
    for axis, feature in zip(axes.flat, features, strict=False):
        axis.set_visible(True)
        edges = feature.edges
        heights = [0.0 if c is None else c for c in feature.counts]
        axis.bar(edges[:-1], heights, width=[b - a for a, b in itertools.pairwise(edges)], align="edge")
        axis.set_title(f"x{feature.column}", fontsize=9)
        axis.tick_params(labelsize=7)
    title = "federated histograms" + (f" (DP epsilon {statistics.privacy.epsilon:g})" if statistics.privacy else "")
    figure.suptitle(f"{statistics.job}: {title}", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
