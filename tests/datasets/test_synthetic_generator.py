"""The Synthetic(alpha, beta) generator of the FedProx paper: shapes, laws, determinism, heterogeneity."""

from __future__ import annotations

import numpy as np

from fedsilo.api import SyntheticSpec
from fedsilo.datasets import load_pooled_data, load_silo_data
from fedsilo.datasets._sources import SYNTHETIC_FLOOR, synthetic

from .conftest import job_spec, rows


def test_every_silo_is_one_device_with_the_configured_shape() -> None:
    spec = job_spec(silos=4, data={"source": "synthetic", "synthetic": {"numFeatures": 20, "numClasses": 5}})
    for index in range(4):
        data = load_silo_data(spec, index, 4)
        assert data.input_shape == (20,)
        assert data.num_classes == 5
        assert data.train_x.shape[1:] == (20,) and data.train_x.dtype == np.float32
        assert data.train_y.dtype == np.int64


def test_device_sizes_are_lognormal_around_the_configured_mean() -> None:
    devices = synthetic(SyntheticSpec(samples_per_silo=300), 400, seed=5)
    sizes = np.array([len(d.y) for d in devices])
    assert sizes.min() >= SYNTHETIC_FLOOR
    assert abs(sizes.mean() - 300) < 30
    # Heavy tail: the largest device holds several times the median.
    assert sizes.max() > 4 * np.median(sizes)


def test_inputs_have_the_papers_diagonal_covariance() -> None:
    (device,) = synthetic(SyntheticSpec(num_features=10, samples_per_silo=40000), 1, seed=1)
    variances = device.x.var(axis=0)
    expected = np.arange(1, 11, dtype=np.float64) ** -1.2
    assert np.allclose(variances, expected, rtol=0.1)


def test_the_same_seed_gives_the_same_devices_and_another_seed_others() -> None:
    spec = SyntheticSpec()
    first, again, other = synthetic(spec, 3, seed=4), synthetic(spec, 3, seed=4), synthetic(spec, 3, seed=5)
    assert all(np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0].x[:10], other[0].x[:10])


def spread_of_feature_means(beta: float) -> float:
    devices = synthetic(SyntheticSpec(alpha=0.0, beta=beta), 30, seed=2)
    return float(np.std([d.x.mean() for d in devices]))


def test_a_larger_beta_makes_the_devices_inputs_differ_more() -> None:
    assert spread_of_feature_means(10.0) > 2 * spread_of_feature_means(0.0)


def test_alpha_shifts_every_class_logit_alike_so_labels_do_not_depend_on_it() -> None:
    # As in the paper: u_k is added to all of W_k and b_k, which argmax cannot see.
    calm, wild = synthetic(SyntheticSpec(alpha=0.0), 5, seed=3), synthetic(SyntheticSpec(alpha=50.0), 5, seed=3)
    assert all(np.array_equal(a.y, b.y) and np.array_equal(a.x, b.x) for a, b in zip(calm, wild, strict=True))


def test_devices_differ_in_their_label_mix_even_at_alpha_and_beta_zero() -> None:
    devices = synthetic(SyntheticSpec(alpha=0.0, beta=0.0, samples_per_silo=2000), 10, seed=3)
    mixes = np.array([np.bincount(d.y, minlength=10) / len(d.y) for d in devices])
    assert np.mean(0.5 * np.abs(mixes - mixes.mean(axis=0)).sum(axis=1)) > 0.3


def test_the_pooled_synthetic_data_is_the_union_of_the_devices() -> None:
    spec = job_spec(silos=3, data={"source": "synthetic"})
    silos = [load_silo_data(spec, i, 3) for i in range(3)]
    pooled = load_pooled_data(spec, 3)
    assert rows(pooled.train_x) == rows(np.concatenate([s.train_x for s in silos]))
    assert rows(pooled.test_x) == rows(np.concatenate([s.test_x for s in silos]))
