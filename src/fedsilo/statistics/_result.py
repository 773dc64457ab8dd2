"""The published statistics and the preprocessing fitted from them.

``FederatedStatistics`` is what ``fedsilo stats`` prints and writes and what the local run
keeps in its directory: only totals, with every bin and category below ``minCount``
suppressed (``None``), the silos left out with their reasons, and how much noise the
totals carry. ``fit_preprocessing`` turns it into the ``FittedPreprocessing`` every silo
applies. Min and max are never a record's value: they are the outer edges of the
outermost bins that reach ``minCount``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from fedsilo.api import Imputation, PreprocessingSpec, Scaling
from fedsilo.datasets import FittedCategorical, FittedNumeric, FittedPreprocessing
from fedsilo.identity import sha256_digest
from fedsilo.protocol import StrictMessage

_Real = Annotated[float, Field(ge=-1e300, le=1e300)]
_Count = Annotated[float, Field(ge=0, le=1e15)]
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class NumericStatistics(StrictMessage):
    """One numeric feature's totals and what follows from them (None where suppressed)."""

    column: Annotated[int, Field(ge=0)]
    count: _Count
    missing: _Count
    mean: _Real | None
    variance: Annotated[float, Field(ge=0, le=1e300)] | None
    min: _Real | None
    max: _Real | None
    quantiles: tuple[tuple[float, _Real], ...]
    edges: tuple[_Real, ...]
    #: Per bin between consecutive edges; None where the bin holds fewer than minCount records.
    counts: tuple[_Count | None, ...]


class CategoricalStatistics(StrictMessage):
    """One categorical feature's code counts; codes below minCount (and 'other') are left out."""

    column: Annotated[int, Field(ge=0)]
    counts: dict[str, _Count]
    suppressed: Annotated[int, Field(ge=0)]
    other: _Count | None
    missing: _Count | None


class ExcludedSilo(StrictMessage):
    """A silo whose records are not in the totals, and why."""

    silo: str
    reason: str


class StatisticsPrivacy(StrictMessage):
    """The DP guarantee the released totals carry per silo."""

    epsilon: float
    delta: float
    noise_multiplier: float
    releases: int


class FederatedStatistics(StrictMessage):
    """Every statistic one phase released: totals over the counted silos only."""

    max_bytes: ClassVar[int] = 8 << 20

    format: Literal["fedsilo.statistics/v1"] = "fedsilo.statistics/v1"
    job: str
    silos: tuple[str, ...]
    excluded: tuple[ExcludedSilo, ...]
    records: _Count
    min_count: int
    privacy: StatisticsPrivacy | None
    numeric: tuple[NumericStatistics, ...]
    categorical: tuple[CategoricalStatistics, ...]

    def digest(self) -> str:
        """``sha256:...`` of the canonical document."""
        return sha256_digest(self.canonical_bytes())

    def feature(self, column: int) -> NumericStatistics:
        """The statistics of numeric feature ``column``."""
        for feature in self.numeric:
            if feature.column == column:
                return feature
        raise KeyError(f"no numeric feature {column}")


def suppress(counts: npt.NDArray[np.float64], floor: float) -> tuple[float | None, ...]:
    """Counts as published: a count below ``floor`` (noise included) is None."""
    return tuple(float(c) if c >= floor else None for c in counts)


def histogram_moments(edges: npt.NDArray[np.float64], counts: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    """Count, mean and variance from a histogram (bin midpoints; noisy negative counts as 0)."""
    weights = np.clip(counts, 0, None)
    total = float(weights.sum())
    if total <= 0:
        return 0.0, float("nan"), float("nan")
    middles = (edges[:-1] + edges[1:]) / 2
    mean = float((weights * middles).sum() / total)
    return total, mean, float((weights * (middles - mean) ** 2).sum() / total)


def histogram_quantiles(
    edges: npt.NDArray[np.float64], counts: npt.NDArray[np.float64], levels: tuple[float, ...] = QUANTILES
) -> tuple[tuple[float, float], ...]:
    """Quantiles by linear interpolation within the histogram's bins."""
    weights = np.clip(counts, 0, None)
    total = weights.sum()
    if total <= 0:
        return ()
    cumulative = np.concatenate([[0.0], np.cumsum(weights)]) / total
    return tuple((level, float(np.interp(level, cumulative, edges))) for level in levels)


def fit_preprocessing(statistics: FederatedStatistics, preprocessing: PreprocessingSpec) -> FittedPreprocessing:
    """The transform every silo applies, from the published statistics only.

    Raises ``ValueError`` naming the feature when a statistic the transform needs was suppressed.
    """
    numeric = []
    for feature in statistics.numeric:
        center, scale = 0.0, 1.0
        if preprocessing.scaling is Scaling.STANDARDIZE:
            center, scale = _required(feature.mean, feature, "mean"), _spread(feature.variance)
        elif preprocessing.scaling is Scaling.MINMAX:
            low, high = _required(feature.min, feature, "min"), _required(feature.max, feature, "max")
            center, scale = low, (high - low) or 1.0
        fill = None
        if preprocessing.impute is Imputation.MEAN:
            fill = _required(feature.mean, feature, "mean")
        elif preprocessing.impute is Imputation.MEDIAN:
            fill = _required(dict(feature.quantiles).get(0.5), feature, "median")
        numeric.append(FittedNumeric(column=feature.column, center=center, scale=scale, fill=fill))
    categorical = [
        FittedCategorical(column=c.column, vocabulary=tuple(sorted(int(code) for code in c.counts)))
        for c in statistics.categorical
    ]
    return FittedPreprocessing(
        format="fedsilo.preprocessing/v1",
        job=statistics.job.split("/")[0],
        scaling=preprocessing.scaling,
        num_features=len(statistics.numeric) + len(statistics.categorical),
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        statistics_digest=statistics.digest(),
    )


def _required(value: float | None, feature: NumericStatistics, what: str) -> float:
    if value is None:
        raise ValueError(
            f"the {what} of feature {feature.column} is suppressed (fewer than minCount records in its bins); "
            "lower spec.data.preprocessing.minCount or leave the feature out"
        )
    return value


def _spread(variance: float | None) -> float:
    # A constant (or suppressed) feature carries no information; leave it unscaled rather than divide by 0.
    if variance is None or variance <= 0:
        return 1.0
    return float(np.sqrt(variance))
