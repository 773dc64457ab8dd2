"""Loading the data one silo trains on, and the pooled data of the centralized baseline.

Called by the trainer process (``load_silo_data``), by the hub for the initial model, and
by the baseline (``load_pooled_data``). Both take the same deterministic steps from the
job's seed, so the pooled data holds exactly the silos' records.

Standardization is fitted on each silo's own training split: statistics of one silo's
records never reach another silo, and the held-out split never informs the scaling.
The pooled baseline standardizes with the pooled training split.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import train_test_split

from fedsilo.api import DataSource, FederatedJobSpec

from ._partition import partition
from ._sources import DataError, Pool, breast_cancer, digits, read_csv, read_npz, synthetic
from ._types import SiloData

# Sources whose raw features sit on arbitrary, unrelated scales. Digits come in a fixed
# range (see ``digits``) and the synthetic generator's scale is part of its definition.
_STANDARDIZE = frozenset({DataSource.BREAST_CANCER, DataSource.CSV, DataSource.NPZ})


def _pool(spec: FederatedJobSpec, path: str | None) -> Pool:
    data = spec.data
    if data.source is DataSource.DIGITS:
        return digits()
    if data.source is DataSource.BREAST_CANCER:
        return breast_cancer()
    file = path or data.path
    if file is None:
        raise DataError(f"spec.data.path is required for source {data.source.value}")
    if data.source is DataSource.CSV:
        return read_csv(file, data.label_column)
    if data.source is DataSource.NPZ:
        return read_npz(file)
    raise DataError(f"source {data.source.value} has no single pool")


def _stratifiable(y: npt.NDArray[np.int64], test_fraction: float) -> bool:
    """Whether sklearn can split ``y`` keeping every class in both splits."""
    present = np.bincount(y)
    present = present[present > 0]
    test = math.ceil(test_fraction * len(y))
    return bool(present.min() >= 2) and len(present) <= min(test, len(y) - test)


def _split(pool: Pool, indices: npt.NDArray[np.int64] | None, spec: FederatedJobSpec, silo: int | None) -> SiloData:
    x = pool.x if indices is None else pool.x[indices]
    y = pool.y if indices is None else pool.y[indices]
    fraction = spec.data.test_fraction
    if len(y) - math.ceil(fraction * len(y)) < 1:
        raise DataError(
            f"{len(y)} records cannot be split into training and held-out records (testFraction {fraction})"
        )
    # Seeded per silo so silos' splits are independent draws, and reproducible.
    seed = spec.seed + 1000 * (0 if silo is None else silo + 1)
    train_x, test_x, train_y, test_y = train_test_split(
        x, y, test_size=fraction, random_state=seed, stratify=y if _stratifiable(y, fraction) else None
    )
    return SiloData(train_x, train_y, test_x, test_y, pool.num_classes, pool.input_shape, silo)


def _standardize(data: SiloData, source: DataSource) -> SiloData:
    """Scale features with statistics of the training split only (nothing from the test split)."""
    if source not in _STANDARDIZE:
        return data
    mean = data.train_x.mean(axis=0)
    scale = data.train_x.std(axis=0)
    # A constant feature carries no information; leave it at zero rather than divide by 0.
    scale[scale == 0] = 1.0
    return SiloData(
        ((data.train_x - mean) / scale).astype(np.float32),
        data.train_y,
        ((data.test_x - mean) / scale).astype(np.float32),
        data.test_y,
        data.num_classes,
        data.input_shape,
        data.silo_index,
    )


def _raw_silo(spec: FederatedJobSpec, silo_index: int, num_silos: int, path_override: str | None) -> SiloData:
    if path_override is not None:
        return _split(_pool(spec, path_override), None, spec, silo_index)
    if spec.data.source is DataSource.SYNTHETIC:
        return _split(synthetic(spec.data.synthetic, num_silos, spec.seed)[silo_index], None, spec, silo_index)
    pool = _pool(spec, None)
    parts = partition(pool.y, num_silos, spec.data.partition, np.random.default_rng(spec.seed))
    return _split(pool, parts[silo_index], spec, silo_index)


def load_silo_data(
    spec: FederatedJobSpec, silo_index: int, num_silos: int, path_override: str | None = None
) -> SiloData:
    """The records silo ``silo_index`` of ``num_silos`` trains and evaluates on.

    With ``path_override`` (the Silo's own ``spec.data.path``) the silo reads that whole
    file; otherwise it computes the job's deterministic partition of the shared source
    and keeps its part, so every silo's part is the same in every process.

    Raises:
        DataError: the data cannot be read or partitioned; the message names the file,
            column or setting.
    """
    if not 0 <= silo_index < num_silos:
        raise ValueError(f"silo index {silo_index} is outside 0..{num_silos - 1}")
    return _standardize(_raw_silo(spec, silo_index, num_silos, path_override), spec.data.source)


def load_pooled_data(spec: FederatedJobSpec, num_silos: int, path_overrides: dict[int, str] | None = None) -> SiloData:
    """Every silo's training and held-out records pooled: the centralized baseline's data.

    ``path_overrides`` maps silo indices to their own files, as for ``load_silo_data``.
    """
    overrides = path_overrides or {}
    parts = [_raw_silo(spec, i, num_silos, overrides.get(i)) for i in range(num_silos)]
    shapes = {p.input_shape for p in parts}
    if len(shapes) > 1:
        raise DataError(f"the silos' records have different shapes {sorted(shapes)}; they cannot train one model")
    pooled = SiloData(
        np.concatenate([p.train_x for p in parts]),
        np.concatenate([p.train_y for p in parts]),
        np.concatenate([p.test_x for p in parts]),
        np.concatenate([p.test_y for p in parts]),
        max(p.num_classes for p in parts),
        parts[0].input_shape,
    )
    return _standardize(pooled, spec.data.source)
