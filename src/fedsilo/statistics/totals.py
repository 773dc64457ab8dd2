"""A silo's raw totals for one statistics pass, computed where its records are.

A public module of its own, importing nothing but the pure layout: the trainer process
imports it, and the trainer must not reach the identity or secure-aggregation code the
rest of ``fedsilo.statistics`` uses (an import contract). ``RecordTotals`` is the one place that turns records into a pass's vector (counts, sums,
sums of squares, coarse and fine bin counts, category counts): the trainer process calls it
on its own records when its sidecar asks over the trainer link, and ``StatisticsSilo``
wraps it when it is handed records directly (the unit tests, a silo that holds its data).
``Totals`` is what ``StatisticsSilo`` needs of either source; the sidecar's source asks its
trainer (``fedsilo.sidecar``), so only these totals, never records, cross the link.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ._layout import HISTOGRAM, MOMENTS, Layout, coarse_index, fine_edges, fine_index, histogram_layout, moments_layout

__all__ = ["Columns", "RecordTotals", "Totals"]


@dataclass(frozen=True)
class Columns:
    """What a pass's vector holds: the numeric and categorical columns, codes, bins, and whether it is private.

    ``StatisticsPlan.columns`` gives it; the sidecar sends it to its trainer with each ask,
    so both compute the one layout the hub expects.
    """

    numeric: tuple[int, ...]
    categorical: tuple[int, ...]
    codes: int
    bins: int
    private: bool

    def layout(self, phase: str) -> Layout:
        """The vector layout of ``phase`` (``MOMENTS`` or ``HISTOGRAM``)."""
        if phase == MOMENTS:
            return moments_layout(self.numeric, self.categorical, self.codes, self.private)
        if phase == HISTOGRAM:
            return histogram_layout(self.numeric, self.bins)
        raise ValueError(f"unknown statistics phase {phase!r}")


class Totals(Protocol):
    """Where a silo's totals come from: its record count, its width, and each pass's vector (noise-free)."""

    @property
    def records(self) -> int:
        """How many training records the silo has (compared with ``minCount``; never sent to the hub)."""

    @property
    def features(self) -> int:
        """The width of the silo's records (what it joins the phase with)."""

    def moments(self, plan: Columns) -> npt.NDArray[np.float64]:
        """Pass 1's vector in ``plan.layout(MOMENTS)``."""

    def histogram(self, plan: Columns, ranges: Mapping[int, tuple[float, float]]) -> npt.NDArray[np.float64]:
        """Pass 2's vector over the public ``ranges`` the hub published, in ``plan.layout(HISTOGRAM)``."""


class RecordTotals:
    """Totals computed from records held in this process."""

    def __init__(self, records: npt.NDArray[np.floating]) -> None:
        self._x = np.asarray(records, dtype=np.float64).reshape(len(records), -1)

    @property
    def records(self) -> int:
        """How many records there are."""
        return len(self._x)

    @property
    def features(self) -> int:
        """The width of the records."""
        return int(self._x.shape[1])

    def moments(self, plan: Columns) -> npt.NDArray[np.float64]:
        """Pass 1: record count, missing counts, coarse bins, category counts (and exact sums without DP)."""
        where = plan.layout(MOMENTS).slices()
        vector = np.zeros(plan.layout(MOMENTS).size)
        vector[where["records"]] = len(self._x)
        for column in plan.numeric:
            values = self._x[:, column]
            present = values[~np.isnan(values)]
            vector[where[f"missing/{column}"]] = len(values) - len(present)
            vector[where[f"coarse/{column}"]] = np.bincount(
                coarse_index(present), minlength=where[f"coarse/{column}"].stop - where[f"coarse/{column}"].start
            )
            if not plan.private:
                vector[where[f"count/{column}"]] = len(present)
                vector[where[f"sum/{column}"]] = present.sum()
                vector[where[f"sumsq/{column}"]] = np.square(present).sum()
        for column in plan.categorical:
            vector[where[f"codes/{column}"]] = self._code_counts(plan.codes, self._x[:, column])
        return vector

    def histogram(self, plan: Columns, ranges: Mapping[int, tuple[float, float]]) -> npt.NDArray[np.float64]:
        """Pass 2: each numeric feature's counts over its public range."""
        where = plan.layout(HISTOGRAM).slices()
        vector = np.zeros(plan.layout(HISTOGRAM).size)
        for column in plan.numeric:
            values = self._x[:, column]
            present = values[~np.isnan(values)]
            low, high = ranges[column]
            vector[where[f"bins/{column}"]] = np.bincount(
                fine_index(present, fine_edges(low, high, plan.bins)), minlength=plan.bins + 2
            )
        return vector

    @staticmethod
    def _code_counts(codes: int, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        counts = np.zeros(codes + 2)
        missing = np.isnan(values)
        whole = ~missing & (values == np.round(values)) & (values >= 0) & (values < codes)
        counts[:codes] = np.bincount(values[whole].astype(np.int64), minlength=codes)
        counts[codes] = int((~missing & ~whole).sum())
        counts[codes + 1] = int(missing.sum())
        return counts
