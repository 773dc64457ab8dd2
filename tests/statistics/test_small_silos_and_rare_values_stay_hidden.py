"""A silo below minCount is left out with its reason; bins and categories below it are suppressed."""

from __future__ import annotations

import numpy as np
import pytest

from fedsilo.identity import SigningKey
from fedsilo.runner import run_statistics
from fedsilo.statistics import BELOW_MIN_COUNT, SiloRecords, StatisticsError

from .conftest import silos_of, tabular_spec


def test_a_silo_below_the_minimum_count_is_left_out_with_its_reason() -> None:
    spec = tabular_spec({"scaling": "standardize", "minCount": 50})
    silos = silos_of(spec)
    small = SiloRecords(silos[3].name, silos[3].records[:20], silos[3].signing_key)
    statistics = run_statistics("small", spec, [*silos[:3], small]).statistics
    assert statistics.silos == tuple(s.name for s in silos[:3])
    (excluded,) = statistics.excluded
    assert excluded.silo == small.name and excluded.reason.startswith(BELOW_MIN_COUNT)
    assert "20" not in excluded.reason, "the reason must not reveal the silo's record count"
    pooled = np.concatenate([s.records for s in silos[:3]])
    assert statistics.records == len(pooled)


def test_too_few_silos_with_enough_records_is_an_error_naming_them() -> None:
    spec = tabular_spec({"scaling": "standardize", "minCount": 50}, silos=["bank-a", "bank-b"], minSilos=2)
    silos = silos_of(spec)
    small = SiloRecords("bank-b", silos[1].records[:5], SigningKey.generate())
    with pytest.raises(StatisticsError, match=r"bank-b: below_min_count"):
        run_statistics("too-few", spec, [silos[0], small])


def test_rare_categories_and_thin_bins_are_suppressed() -> None:
    spec = tabular_spec({"scaling": "standardize", "categorical": [12], "minCount": 10})
    silos = silos_of(spec)
    # One record of silo a gets a code no one else has: in the totals it is one record.
    records = silos[0].records.copy()
    records[0, 12] = 20
    altered = [SiloRecords(silos[0].name, records, silos[0].signing_key), *silos[1:]]
    statistics = run_statistics("rare", spec, altered).statistics
    (category,) = statistics.categorical
    assert "20" not in category.counts and category.suppressed >= 1
    for feature in statistics.numeric:
        assert all(c is None or c >= 10 for c in feature.counts)
