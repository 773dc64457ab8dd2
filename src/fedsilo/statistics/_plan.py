"""What the hub and every silo agree on for one job's statistics, derived from the spec alone.

Built from ``spec.data.preprocessing`` (or its defaults, for a job without one) and the
records' width: by every silo from its own records, and by the hub's ``StatisticsPhase``
from the width the silos join with; both sides take the same plan, so the layouts, the
secure aggregation's context and the noise match without any other exchange.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedsilo.api import FederatedJobSpec, PreprocessingSpec, Scaling
from fedsilo.datasets import DataError
from fedsilo.privacy import calibrate_noise
from fedsilo.secagg import SecAggConfig

from ._layout import HISTOGRAM, MOMENTS, Layout, sensitivity
from ._wide import LIMBS
from .totals import Columns

#: Histogram releases a private statistics phase makes (pass 1 and pass 2), charged as one event.
RELEASES = 2
#: The passes in the order they run.
PASSES = (MOMENTS, HISTOGRAM)


class StatisticsError(ValueError):
    """Statistics that cannot be aggregated (too few silos take part); the message names the silos and why.

    Settings that do not fit the records are a ``DataError`` instead, as when loading them.
    """


@dataclass(frozen=True)
class StatisticsPlan:
    """The columns, binning, minimum count and noise of one statistics phase."""

    job: str
    silos: tuple[str, ...]
    numeric: tuple[int, ...]
    categorical: tuple[int, ...]
    codes: int
    bins: int
    min_count: int
    min_silos: int
    threshold: int
    epsilon: float | None
    delta: float
    noise_multiplier: float | None

    @classmethod
    def for_job(cls, job: str, spec: FederatedJobSpec, num_features: int) -> StatisticsPlan:
        """The plan of ``job`` (its run name) for records of ``num_features`` values."""
        preprocessing = spec.data.preprocessing or PreprocessingSpec(scaling=Scaling.NONE)
        outside = [c for c in preprocessing.categorical if c >= num_features]
        if outside:
            raise DataError(
                f"spec.data.preprocessing.categorical names column {outside[0]}, but records have "
                f"{num_features} features (positions 0..{num_features - 1}, label removed)"
            )
        categorical = tuple(sorted(preprocessing.categorical))
        noise = None
        if preprocessing.epsilon is not None:
            # Both passes are full (unsampled) Gaussian releases: steps=2 at sample rate 1.
            noise = calibrate_noise(preprocessing.epsilon, preprocessing.delta, 1.0, RELEASES)
        return cls(
            job=job,
            silos=tuple(spec.silos),
            numeric=tuple(c for c in range(num_features) if c not in categorical),
            categorical=categorical,
            codes=preprocessing.max_categories,
            bins=preprocessing.bins,
            min_count=preprocessing.min_count,
            min_silos=spec.min_silos,
            threshold=min(spec.secagg_threshold(), len(spec.silos)),
            epsilon=preprocessing.epsilon,
            delta=preprocessing.delta,
            noise_multiplier=noise,
        )

    @property
    def private(self) -> bool:
        """Whether the histograms carry DP noise (and the exact sums are not released)."""
        return self.noise_multiplier is not None

    @property
    def columns(self) -> Columns:
        """What each pass's vector holds: all a silo's totals source needs of the plan."""
        return Columns(self.numeric, self.categorical, self.codes, self.bins, self.private)

    def layout(self, phase: str) -> Layout:
        """The vector layout of ``phase`` (``MOMENTS`` or ``HISTOGRAM``)."""
        return self.columns.layout(phase)

    def pass_number(self, phase: str) -> int:
        """The number a pass goes by on the wire and in the secure aggregation's context: 1 moments, 2 histogram."""
        return PASSES.index(phase) + 1

    def secagg_config(self, phase: str) -> SecAggConfig:
        """The secure aggregation of one pass, the same at the hub and every silo.

        Its own job context, so no key or mask is shared with training.
        """
        return SecAggConfig(
            job=f"{self.job}#statistics",
            round=self.pass_number(phase),
            silos=self.silos,
            threshold=self.threshold,
            vector_length=self.words(phase),
            # Unused: the words arrive encoded (``_wide``), not as a weighted float update.
            fractional_bits=0,
            clip_range=1.0,
        )

    def words(self, phase: str) -> int:
        """How many 32-bit words a silo's masked vector of ``phase`` has."""
        return self.layout(phase).size * LIMBS

    def sensitivity(self, phase: str) -> float:
        """L2 sensitivity of ``phase``'s vector to one record."""
        return sensitivity(self.numeric, self.categorical, phase)
