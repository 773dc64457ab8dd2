"""Every partition scheme deals each record to exactly one silo, the same way in every process."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from fedsilo.api import PartitionScheme, PartitionSpec
from fedsilo.datasets import MIN_RECORDS, load_pooled_data, load_silo_data, partition

from .conftest import job_spec, rows

LABELS = np.repeat(np.arange(10), 60)


@pytest.mark.parametrize("scheme", list(PartitionScheme))
@pytest.mark.parametrize("num_silos", [2, 3, 7])
def test_the_parts_are_disjoint_and_cover_all_records(scheme: PartitionScheme, num_silos: int) -> None:
    parts = partition(LABELS, num_silos, PartitionSpec(scheme=scheme, alpha=0.5), np.random.default_rng(3))
    assert len(parts) == num_silos
    dealt = np.concatenate(parts)
    assert len(dealt) == len(LABELS)
    assert np.array_equal(np.sort(dealt), np.arange(len(LABELS)))
    assert min(len(p) for p in parts) >= MIN_RECORDS


@pytest.mark.parametrize("scheme", list(PartitionScheme))
def test_the_same_seed_gives_the_same_parts(scheme: PartitionScheme) -> None:
    spec = PartitionSpec(scheme=scheme, alpha=0.3)
    first = partition(LABELS, 4, spec, np.random.default_rng(11))
    second = partition(LABELS, 4, spec, np.random.default_rng(11))
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_silos_together_hold_exactly_the_digits_records() -> None:
    spec = job_spec(silos=3, data={"source": "digits", "partition": {"scheme": "dirichlet", "alpha": 0.5}})
    silos = [load_silo_data(spec, i, 3) for i in range(3)]
    records = np.concatenate([x for s in silos for x in (s.train_x, s.test_x)])
    labels = np.concatenate([y for s in silos for y in (s.train_y, s.test_y)])
    digits = load_digits()
    assert rows(records) == rows(digits.data.reshape(-1, 1, 8, 8).astype(np.float32) / 8 - 1)
    assert np.array_equal(np.bincount(labels), np.bincount(digits.target))


def test_loading_a_silo_twice_gives_identical_records() -> None:
    spec = job_spec(data={"source": "digits", "partition": {"scheme": "quantity", "alpha": 1.0}})
    first, second = load_silo_data(spec, 1, 3), load_silo_data(spec, 1, 3)
    assert np.array_equal(first.train_x, second.train_x)
    assert np.array_equal(first.test_y, second.test_y)
    assert first.silo_index == 1


def test_the_pooled_data_is_the_union_of_the_silos_splits() -> None:
    spec = job_spec(data={"source": "digits", "partition": {"scheme": "dirichlet", "alpha": 0.5}})
    silos = [load_silo_data(spec, i, 3) for i in range(3)]
    pooled = load_pooled_data(spec, 3)
    assert rows(pooled.train_x) == rows(np.concatenate([s.train_x for s in silos]))
    assert rows(pooled.test_x) == rows(np.concatenate([s.test_x for s in silos]))
    assert pooled.silo_index is None


def test_every_silo_holds_out_about_the_test_fraction_with_every_class_where_possible() -> None:
    spec = job_spec(data={"source": "digits", "testFraction": 0.25})
    for index in range(3):
        data = load_silo_data(spec, index, 3)
        total = len(data.train_y) + len(data.test_y)
        assert abs(len(data.test_y) - 0.25 * total) <= 1
        assert set(data.test_y) == set(data.train_y)


def test_a_silo_index_outside_the_job_is_refused() -> None:
    with pytest.raises(ValueError, match=r"silo index 3 is outside 0\.\.2"):
        load_silo_data(job_spec(), 3, 3)
