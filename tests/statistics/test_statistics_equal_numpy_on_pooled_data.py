"""The released totals are numpy's on the pooled records: exact counts and sums, moments within float tolerance."""

from __future__ import annotations

import numpy as np

from fedsilo.runner import run_statistics

from .conftest import silos_of, tabular_spec


def test_counts_sums_and_moments_equal_numpy_on_the_pooled_records() -> None:
    spec = tabular_spec({"scaling": "standardize", "categorical": [12, 13]})
    silos = silos_of(spec)
    statistics = run_statistics("equal", spec, silos).statistics
    pooled = np.concatenate([s.records for s in silos]).astype(np.float64)
    assert statistics.records == len(pooled)
    for feature in statistics.numeric:
        values = pooled[:, feature.column]
        assert feature.count == len(values)
        assert feature.missing == 0
        # The wide encoding rounds each value to 2^-32: the sum is exact to far below float precision.
        assert feature.mean is not None and feature.variance is not None
        assert abs(feature.mean * feature.count - values.sum()) <= 1e-6 * max(1.0, abs(values.sum()))
        assert np.isclose(feature.variance, values.var(), rtol=1e-9)
        # Min and max are edges of the outermost bins that reach minCount, never a record's value:
        # only records in suppressed bins (each under minCount) lie outside them.
        assert feature.min is not None and feature.max is not None
        assert feature.min in feature.edges and feature.max in feature.edges
        outside = int((values < feature.min).sum() + (values > feature.max).sum())
        assert outside < statistics.min_count * len(feature.counts)
        released = sum(c for c in feature.counts if c is not None)
        assert len(values) - statistics.min_count * len(feature.counts) < released <= len(values)
        median = dict(feature.quantiles)[0.5]
        width = feature.edges[1] - feature.edges[0]
        assert abs(median - np.median(values)) <= width
    for category in statistics.categorical:
        codes = pooled[:, category.column].astype(int)
        assert category.counts == {str(c): float((codes == c).sum()) for c in np.unique(codes)}


def test_missing_values_are_counted_and_left_out_of_the_moments() -> None:
    spec = tabular_spec({"scaling": "standardize", "impute": "mean"}, tabular={"missingFraction": 0.1})
    silos = silos_of(spec)
    statistics = run_statistics("missing", spec, silos).statistics
    pooled = np.concatenate([s.records for s in silos]).astype(np.float64)
    for feature in statistics.numeric[: spec.data.tabular.num_features]:
        values = pooled[:, feature.column]
        assert feature.missing == np.isnan(values).sum() > 0
        assert feature.mean is not None
        assert np.isclose(feature.mean, np.nanmean(values), rtol=1e-9)
