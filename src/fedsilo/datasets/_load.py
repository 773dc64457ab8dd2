"""Loading the data one silo trains on, and the pooled data of the centralized baseline.

Called by the trainer process (``load_silo_data``), by the hub for the initial model, and
by the baseline (``load_pooled_data``). Both take the same deterministic steps from the
job's seed, so the pooled data holds exactly the silos' records.

Scaling is the job's explicit choice, ``spec.data.preprocessing`` (docs/statistics.md):
a transform fitted by the federated statistics phase (``FittedPreprocessing``, the same
in every silo and in the baseline), or per-silo standardization (``scaling: silo``), where
each silo scales with its own training split's statistics and the pooled baseline with the
pooled training split's. A job that leaves ``preprocessing`` out keeps the behaviour of
earlier releases (per-silo standardization of breast_cancer, csv and npz) and is warned
once per process, since under label skew that choice costs accuracy. The held-out split
never informs any scaling. ``load_raw_silo_data`` gives the statistics phase the records
before any of this.
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np
import numpy.typing as npt

from fedsilo.api import DataSource, FederatedJobSpec, Imputation, Scaling

from ._partition import partition
from ._preprocess import FittedPreprocessing
from ._sources import DataError, Pool, breast_cancer, digits, read_csv, read_npz, synthetic, tabular
from ._types import SiloData

log = logging.getLogger(__name__)

# Sources whose raw features sit on arbitrary, unrelated scales, standardized per silo when
# a job does not say how to scale. Digits come in a fixed range (see ``digits``), and the
# synthetic and tabular generators' scales are part of their definitions.
_STANDARDIZE = frozenset({DataSource.BREAST_CANCER, DataSource.CSV, DataSource.NPZ})


@functools.cache
def _warn_per_silo_default(source: DataSource) -> None:
    """Say once per process that an unset preprocessing means per-silo standardization."""
    log.warning(
        "spec.data.preprocessing is unset: each silo standardizes %s with its own statistics, so one raw value "
        "means different things in different silos; set spec.data.preprocessing.scaling to standardize for one "
        "global scaler, or to silo to keep this choice and silence this warning (docs/statistics.md)",
        source.value,
    )


def _pool(spec: FederatedJobSpec, path: str | None) -> Pool:
    data = spec.data
    if data.source is DataSource.DIGITS:
        return digits()
    if data.source is DataSource.BREAST_CANCER:
        return breast_cancer()
    file = path or data.path
    if file is None:
        raise DataError(f"spec.data.path is required for source {data.source.value}")
    imputes = data.preprocessing is not None and data.preprocessing.impute is not Imputation.NONE
    if data.source is DataSource.CSV:
        return read_csv(file, data.label_column, allow_missing=imputes)
    if data.source is DataSource.NPZ:
        return read_npz(file, allow_missing=imputes)
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
    from sklearn.model_selection import train_test_split  # on first use, as in _sources

    train_x, test_x, train_y, test_y = train_test_split(
        x, y, test_size=fraction, random_state=seed, stratify=y if _stratifiable(y, fraction) else None
    )
    return SiloData(train_x, train_y, test_x, test_y, pool.num_classes, pool.input_shape, silo)


def _standardize(data: SiloData) -> SiloData:
    """Scale features with statistics of the training split only (nothing from the test split)."""
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
    if spec.data.source is DataSource.TABULAR:
        pool = tabular(spec.data.tabular, num_silos, spec.seed)
        if spec.data.tabular.missing_fraction > 0 and (
            spec.data.preprocessing is None or spec.data.preprocessing.impute is Imputation.NONE
        ):
            raise DataError(
                "spec.data.tabular.missingFraction leaves values missing; set spec.data.preprocessing.impute "
                "to mean or median"
            )
    else:
        pool = _pool(spec, None)
    parts = partition(pool.y, num_silos, spec.data.partition, np.random.default_rng(spec.seed))
    return _split(pool, parts[silo_index], spec, silo_index)


def _prepare(data: SiloData, spec: FederatedJobSpec, fitted: FittedPreprocessing | None) -> SiloData:
    """``data`` scaled as the job says: fitted transform, per-silo standardization, or raw."""
    preprocessing = spec.data.preprocessing
    if preprocessing is None:
        if spec.data.source not in _STANDARDIZE:
            return data
        _warn_per_silo_default(spec.data.source)
        return _standardize(data)
    if preprocessing.federated:
        if fitted is None:
            raise DataError(
                "spec.data.preprocessing needs the transform the statistics phase fits; run the job with "
                "'fedsilo run' (which runs the phase first) or pass the file 'fedsilo stats' wrote"
            )
        prepared = SiloData(
            fitted.apply(data.train_x),
            data.train_y,
            fitted.apply(data.test_x),
            data.test_y,
            data.num_classes,
            (fitted.output_features,),
            data.silo_index,
        )
        if preprocessing.scaling is Scaling.SILO:
            return _standardize_columns(prepared, len(fitted.numeric))
        return prepared
    if np.isnan(data.train_x).any() or np.isnan(data.test_x).any():
        raise DataError("records hold missing values; set spec.data.preprocessing.impute to mean or median")
    return _standardize(data) if preprocessing.scaling is Scaling.SILO else data


def _standardize_columns(data: SiloData, columns: int) -> SiloData:
    """Per-silo standardization of the first ``columns`` features only (the numeric ones; one-hot stays 0/1)."""
    scaled = _standardize(data)
    train, test = data.train_x.copy(), data.test_x.copy()
    train[:, :columns], test[:, :columns] = scaled.train_x[:, :columns], scaled.test_x[:, :columns]
    return SiloData(train, data.train_y, test, data.test_y, data.num_classes, data.input_shape, data.silo_index)


def load_raw_silo_data(
    spec: FederatedJobSpec, silo_index: int, num_silos: int, path_override: str | None = None
) -> SiloData:
    """Silo ``silo_index``'s records before any scaling (missing values kept as NaN): the statistics phase's input."""
    if not 0 <= silo_index < num_silos:
        raise ValueError(f"silo index {silo_index} is outside 0..{num_silos - 1}")
    return _raw_silo(spec, silo_index, num_silos, path_override)


def load_silo_data(
    spec: FederatedJobSpec,
    silo_index: int,
    num_silos: int,
    path_override: str | None = None,
    preprocessing: FittedPreprocessing | None = None,
) -> SiloData:
    """The records silo ``silo_index`` of ``num_silos`` trains and evaluates on.

    With ``path_override`` (the Silo's own ``spec.data.path``) the silo reads that whole
    file; otherwise it computes the job's deterministic partition of the shared source
    and keeps its part, so every silo's part is the same in every process. A job with
    federated preprocessing needs ``preprocessing``, the transform its statistics phase fitted.

    Raises:
        DataError: the data cannot be read or partitioned; the message names the file,
            column or setting.
    """
    raw = load_raw_silo_data(spec, silo_index, num_silos, path_override)
    return _prepare(raw, spec, preprocessing)


def load_pooled_data(
    spec: FederatedJobSpec,
    num_silos: int,
    path_overrides: dict[int, str] | None = None,
    preprocessing: FittedPreprocessing | None = None,
) -> SiloData:
    """Every silo's training and held-out records pooled: the centralized baseline's data.

    ``path_overrides`` maps silo indices to their own files, as for ``load_silo_data``;
    ``preprocessing`` is the job's fitted transform, applied exactly as in every silo.
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
    return _prepare(pooled, spec, preprocessing)
