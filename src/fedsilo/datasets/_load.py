"""Loading the data one silo trains on, and the pooled data of the centralized baseline.

Called by the trainer process (``load_silo_data``) and the baseline
(``load_pooled_data``). Both take the same deterministic steps from the job's seed, so
the pooled data is exactly the union of the silos' records.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import train_test_split

from fedsilo.api import DataSource, FederatedJobSpec

from ._partition import partition
from ._sources import Pool, breast_cancer, digits, read_csv, read_npz, synthetic
from ._types import SiloData

# Sources whose raw features are on very different scales and need standardizing.
_STANDARDIZE = {DataSource.BREAST_CANCER, DataSource.CSV, DataSource.NPZ}


def _pool(spec: FederatedJobSpec, path: str | None) -> Pool:
    data = spec.data
    if data.source is DataSource.DIGITS:
        return digits()
    if data.source is DataSource.BREAST_CANCER:
        return breast_cancer()
    file = path or data.path
    if file is None:
        raise ValueError(f"spec.data.path is required for source {data.source.value}")
    if data.source is DataSource.CSV:
        return read_csv(file, data.label_column)
    if data.source is DataSource.NPZ:
        return read_npz(file)
    raise ValueError(f"source {data.source.value} has no single pool")


def _split(pool: Pool, indices: npt.NDArray[np.int64] | None, spec: FederatedJobSpec, seed: int) -> SiloData:
    x = pool.x if indices is None else pool.x[indices]
    y = pool.y if indices is None else pool.y[indices]
    counts = np.bincount(y, minlength=pool.num_classes)
    stratify = y if counts[counts > 0].min() >= 2 else None
    train_x, test_x, train_y, test_y = train_test_split(
        x, y, test_size=spec.data.test_fraction, random_state=seed, stratify=stratify
    )
    return SiloData(train_x, train_y, test_x, test_y, pool.num_classes, pool.input_shape)


def _standardized(data: SiloData, mean: npt.NDArray[np.float32], scale: npt.NDArray[np.float32]) -> SiloData:
    return SiloData(
        ((data.train_x - mean) / scale).astype(np.float32),
        data.train_y,
        ((data.test_x - mean) / scale).astype(np.float32),
        data.test_y,
        data.num_classes,
        data.input_shape,
    )


def _standardize(data: SiloData, source: DataSource) -> SiloData:
    """Scale features with statistics of the training split only (nothing from the test split)."""
    if source not in _STANDARDIZE:
        return data
    mean = data.train_x.mean(axis=0)
    scale = data.train_x.std(axis=0)
    scale[scale == 0] = 1.0
    return _standardized(data, mean, scale)


def _raw_silo(spec: FederatedJobSpec, silo_index: int, num_silos: int, path_override: str | None) -> SiloData:
    seed = spec.seed + 1000 * silo_index
    if path_override is not None:
        return _split(_pool(spec, path_override), None, spec, seed)
    if spec.data.source is DataSource.SYNTHETIC:
        return _split(synthetic(spec.data.synthetic, num_silos, spec.seed)[silo_index], None, spec, seed)
    pool = _pool(spec, None)
    parts = partition(pool.y, num_silos, spec.data.partition, np.random.default_rng(spec.seed))
    return _split(pool, parts[silo_index], spec, seed)


def load_silo_data(
    spec: FederatedJobSpec, silo_index: int, num_silos: int, path_override: str | None = None
) -> SiloData:
    """The records silo ``silo_index`` of ``num_silos`` trains and evaluates on."""
    if not 0 <= silo_index < num_silos:
        raise ValueError(f"silo index {silo_index} is outside 0..{num_silos - 1}")
    return _standardize(_raw_silo(spec, silo_index, num_silos, path_override), spec.data.source)


def load_pooled_data(spec: FederatedJobSpec, num_silos: int, path_overrides: dict[int, str] | None = None) -> SiloData:
    """Every silo's training and test records pooled: the centralized baseline's data."""
    overrides = path_overrides or {}
    parts = [_raw_silo(spec, i, num_silos, overrides.get(i)) for i in range(num_silos)]
    pooled = SiloData(
        np.concatenate([p.train_x for p in parts]),
        np.concatenate([p.train_y for p in parts]),
        np.concatenate([p.test_x for p in parts]),
        np.concatenate([p.test_y for p in parts]),
        max(p.num_classes for p in parts),
        parts[0].input_shape,
    )
    return _standardize(pooled, spec.data.source)
