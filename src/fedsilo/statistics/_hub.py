"""The hub's side of the statistics phase: it relays, sums masked words and derives statistics from totals.

``StatisticsHub`` runs one ``SecAggServer`` per pass, the very code that sums training
updates, and keeps in ``view`` every byte it received (``HubView``): masked words per silo
and the unmasked total. Everything it publishes is derived from totals only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from fedsilo.identity import VerifyKey
from fedsilo.secagg import SecAggServer

from ._layout import HISTOGRAM, MOMENTS, coarse_range, fine_edges
from ._plan import RELEASES, StatisticsPlan
from ._result import (
    CategoricalStatistics,
    ExcludedSilo,
    FederatedStatistics,
    NumericStatistics,
    StatisticsPrivacy,
    histogram_moments,
    histogram_quantiles,
    suppress,
)
from ._wide import decode_wide


@dataclass
class HubView:
    """What the hub received in one phase: per pass, each silo's masked words, and the unmasked totals."""

    masked: dict[str, dict[str, npt.NDArray[np.uint32]]] = field(default_factory=dict)
    totals: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)


class StatisticsHub:
    """The hub in one statistics phase."""

    def __init__(self, plan: StatisticsPlan, verify_keys: Mapping[str, VerifyKey]) -> None:
        self.plan = plan
        self._keys = dict(verify_keys)
        self.view = HubView()
        self.excluded: dict[str, str] = {}
        self._server: SecAggServer | None = None
        self._phase = ""

    @property
    def verify_keys(self) -> dict[str, VerifyKey]:
        """The silos' registered keys, which every advert's signature is checked against."""
        return dict(self._keys)

    def open(self, phase: str) -> SecAggServer:
        """Start a pass; the server relays adverts and shares and sums what arrives."""
        self._phase = phase
        self._server = SecAggServer(self.plan.secagg_config(phase), self._keys)
        self.view.masked[phase] = {}
        return self._server

    @property
    def server(self) -> SecAggServer | None:
        """The open pass's secure aggregation (None before the first pass)."""
        return self._server

    def receive(self, silo: str, masked: npt.NDArray[np.uint32]) -> None:
        """A silo's masked vector: recorded as received and added to the running sum."""
        assert self._server is not None
        self.view.masked[self._phase][silo] = masked.copy()
        self._server.add_input(silo, masked)

    def total(self) -> npt.NDArray[np.float64]:
        """The pass's unmasked total, decoded exactly from the wide words."""
        assert self._server is not None
        totals = np.array([float(t) for t in decode_wide(self._server.raw_result())])
        self.view.totals[self._phase] = totals
        return totals

    @property
    def counted(self) -> tuple[str, ...]:
        """Silos whose vectors are in the last pass's total."""
        assert self._server is not None
        return tuple(sorted(self._server.counted))

    # ----- what follows from the totals ----------------------------------------------------

    def floor(self, phase: str) -> float:
        """The count a total must reach to be released: minCount, plus three noise deviations in a private phase.

        Noise alone must not make an empty bin or an absent category look populated (the
        thresholding of DP histograms); the noise in a total of n silos has std
        sigma * sensitivity * sqrt(n / minSilos).
        """
        plan = self.plan
        if plan.noise_multiplier is None:
            return float(plan.min_count)
        silos = max(len(self.counted), 1)
        std = plan.noise_multiplier * plan.sensitivity(phase) * (silos / plan.min_silos) ** 0.5
        return float(plan.min_count + 3.0 * std)

    def ranges(self, moments: npt.NDArray[np.float64]) -> dict[int, tuple[float, float]]:
        """Pass 2's public range per numeric feature: the coarse bins that reach minCount, outermost edges."""
        where = self.plan.layout(MOMENTS).slices()
        out = {}
        for column in self.plan.numeric:
            reaching = np.flatnonzero(moments[where[f"coarse/{column}"]] >= self.floor(MOMENTS))
            out[column] = coarse_range(int(reaching[0]), int(reaching[-1])) if reaching.size else (0.0, 1.0)
        return out

    def publish(
        self,
        moments: npt.NDArray[np.float64],
        histogram: npt.NDArray[np.float64],
        ranges: Mapping[int, tuple[float, float]],
    ) -> FederatedStatistics:
        """The statistics the phase releases, from the two totals alone."""
        plan = self.plan
        first, second = plan.layout(MOMENTS).slices(), plan.layout(HISTOGRAM).slices()
        numeric = []
        for column in plan.numeric:
            edges = fine_edges(*ranges[column], plan.bins)
            slots = histogram[second[f"bins/{column}"]]
            # Values below or above the range sit in coarse bins under minCount: count them at its ends.
            counts = slots[1:-1].copy()
            counts[0] += slots[0]
            counts[-1] += slots[-1]
            numeric.append(self._numeric(column, moments, first, edges, counts))
        categorical = [self._categorical(column, moments[first[f"codes/{column}"]]) for column in plan.categorical]
        privacy = None
        if plan.noise_multiplier is not None and plan.epsilon is not None:
            privacy = StatisticsPrivacy(
                epsilon=plan.epsilon, delta=plan.delta, noise_multiplier=plan.noise_multiplier, releases=RELEASES
            )
        return FederatedStatistics(
            job=plan.job,
            silos=self.counted,
            excluded=tuple(ExcludedSilo(silo=s, reason=r) for s, r in sorted(self.excluded.items())),
            records=max(float(moments[first["records"]][0]), 0.0),
            min_count=plan.min_count,
            privacy=privacy,
            numeric=tuple(numeric),
            categorical=tuple(categorical),
        )

    def _numeric(
        self,
        column: int,
        moments: npt.NDArray[np.float64],
        where: Mapping[str, slice],
        edges: npt.NDArray[np.float64],
        counts: npt.NDArray[np.float64],
    ) -> NumericStatistics:
        plan = self.plan
        floor = self.floor(HISTOGRAM)
        released = suppress(counts, floor)
        kept = [i for i, c in enumerate(released) if c is not None]
        if plan.private:
            # Only released bins: a suppressed one holds mostly noise.
            count, mean, variance = histogram_moments(edges, np.where(counts >= floor, counts, 0.0))
        else:
            count = float(moments[where[f"count/{column}"]][0])
            total, squares = float(moments[where[f"sum/{column}"]][0]), float(moments[where[f"sumsq/{column}"]][0])
            mean = total / count if count else float("nan")
            variance = max(squares / count - mean * mean, 0.0) if count else float("nan")
        enough = count >= plan.min_count and bool(kept)
        return NumericStatistics(
            column=column,
            count=max(count, 0.0),
            missing=max(float(moments[where[f"missing/{column}"]][0]), 0.0),
            mean=mean if enough else None,
            variance=variance if enough else None,
            min=float(edges[kept[0]]) if enough else None,
            max=float(edges[kept[-1] + 1]) if enough else None,
            quantiles=histogram_quantiles(edges, np.where(counts >= floor, counts, 0.0)) if enough else (),
            edges=tuple(float(e) for e in edges),
            counts=released,
        )

    def _categorical(self, column: int, slots: npt.NDArray[np.float64]) -> CategoricalStatistics:
        codes, floor = self.plan.codes, self.floor(MOMENTS)
        counts = {str(code): float(slots[code]) for code in range(codes) if slots[code] >= floor}
        return CategoricalStatistics(
            column=column,
            counts=counts,
            suppressed=int(sum(1 for code in range(codes) if 0.5 <= slots[code] < floor)),
            other=float(slots[codes]) if slots[codes] >= floor else None,
            missing=float(slots[codes + 1]) if slots[codes + 1] >= floor else None,
        )
