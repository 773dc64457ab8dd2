"""Dirichlet label skew and quantity skew do what they promise, and every silo keeps a minimum."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from fedsilo.api import PartitionScheme, PartitionSpec
from fedsilo.datasets import MIN_RECORDS, DataError, partition

LABELS = np.repeat(np.arange(10), 100)


def label_skew(parts: list[npt.NDArray[np.int64]]) -> float:
    """Mean total-variation distance between each silo's label mix and the overall one."""
    overall = np.bincount(LABELS, minlength=10) / len(LABELS)
    mixes = [np.bincount(LABELS[p], minlength=10) / len(p) for p in parts]
    return float(np.mean([0.5 * np.abs(m - overall).sum() for m in mixes]))


def deal(scheme: PartitionScheme, alpha: float, num_silos: int = 5, seed: int = 0) -> list[npt.NDArray[np.int64]]:
    return partition(LABELS, num_silos, PartitionSpec(scheme=scheme, alpha=alpha), np.random.default_rng(seed))


def test_a_small_dirichlet_alpha_skews_the_label_mix_of_every_silo() -> None:
    iid = label_skew(deal(PartitionScheme.IID, 1.0))
    skewed = label_skew(deal(PartitionScheme.DIRICHLET, 0.1))
    assert iid < 0.1
    assert skewed > 0.4


def test_a_larger_dirichlet_alpha_skews_less() -> None:
    skews = [np.mean([label_skew(deal(PartitionScheme.DIRICHLET, a, seed=s)) for s in range(5)]) for a in (0.1, 1, 100)]
    assert skews[0] > skews[1] > skews[2]


def test_quantity_skew_varies_sizes_but_keeps_the_label_mix() -> None:
    parts = deal(PartitionScheme.QUANTITY, 0.5)
    sizes = sorted(len(p) for p in parts)
    assert sizes[-1] > 3 * sizes[0]
    assert label_skew(parts) < 0.15
    iid_sizes = [len(p) for p in deal(PartitionScheme.IID, 0.5)]
    assert max(iid_sizes) - min(iid_sizes) <= 1


@pytest.mark.parametrize("scheme", [PartitionScheme.DIRICHLET, PartitionScheme.QUANTITY])
def test_every_silo_gets_the_minimum_even_with_extreme_skew(scheme: PartitionScheme) -> None:
    for seed in range(10):
        assert min(len(p) for p in deal(scheme, 0.05, num_silos=8, seed=seed)) >= MIN_RECORDS


def test_too_few_records_for_the_silos_is_a_clear_error() -> None:
    with pytest.raises(DataError, match=f"cannot give 20 silos {MIN_RECORDS} records each"):
        partition(LABELS[:100], 20, PartitionSpec(), np.random.default_rng(0))


def test_extreme_label_skew_keeps_the_minimum_and_the_skew() -> None:
    parts = deal(PartitionScheme.DIRICHLET, 0.001, num_silos=12)
    assert min(len(p) for p in parts) >= MIN_RECORDS
    assert label_skew(parts) > 0.5
