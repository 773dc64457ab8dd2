"""Where records come from: bundled sets, the FedProx synthetic generator, or a user's file.

Called by ``_load`` only. Nothing here downloads: scikit-learn's digits and breast-cancer
sets ship inside the package, the synthetic generator is computed, and csv/npz files are
read from a path (never unpickled).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fedsilo.api import SyntheticSpec, TabularSpec

# Fewest records one synthetic device holds, as the paper's generator adds 50 to every
# device's lognormal draw; here it is smaller so small configured means stay possible.
SYNTHETIC_FLOOR = 20
# Spread of the lognormal device sizes: heavy-tailed like the paper's power law, but
# mild enough that a handful of silos are not all dwarfed by one.
_SIZE_SIGMA = 1.0


class DataError(ValueError):
    """Data that cannot be loaded; the message names the file, field or column."""


@dataclass(frozen=True)
class Pool:
    """A pooled set of records before it is dealt to silos."""

    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]
    num_classes: int
    input_shape: tuple[int, ...]


def digits() -> Pool:
    """8x8 handwritten digits (1,797 records, 10 classes), bundled with scikit-learn.

    Records are one-channel 8x8 images. Pixels (0..16) are mapped to [-1, 1]: a fixed transform, the same in every silo and
    learned from no split, so label-skewed silos still see identically scaled inputs.
    """
    # Imported on first use: the sidecar and the command-line tools import this package for its
    # types and never load records; scikit-learn would cost each of their starts seconds of CPU.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.data, np.float32).reshape(-1, 1, 8, 8) / 8.0 - 1.0
    return Pool(images, np.asarray(bunch.target, np.int64), 10, (1, 8, 8))


def breast_cancer() -> Pool:
    """Wisconsin breast cancer (569 records, 30 features, 2 classes), bundled with scikit-learn."""
    from sklearn.datasets import load_breast_cancer  # on first use, as load_digits

    bunch = load_breast_cancer()
    return Pool(np.asarray(bunch.data, np.float32), np.asarray(bunch.target, np.int64), 2, (30,))


def _labels(raw: npt.NDArray[np.generic], where: str) -> tuple[npt.NDArray[np.int64], int]:
    values = np.asarray(raw)
    if len(values) == 0:
        raise DataError(f"{where}: no records")
    if values.dtype.kind not in "fiub" or (values.dtype.kind == "f" and not np.all(values == np.round(values))):
        raise DataError(f"{where}: labels must be whole numbers 0, 1, 2, ...")
    labels = values.astype(np.int64)
    if labels.min() < 0:
        raise DataError(f"{where}: labels must be 0 or more")
    return labels, int(labels.max()) + 1


def _check_values(x: npt.NDArray[np.float32], where: str, allow_missing: bool) -> None:
    """Refuse infinite values always, and missing (NaN) ones unless the job imputes them."""
    if np.isinf(x).any():
        raise DataError(f"{where} holds infinite values")
    if not allow_missing and np.isnan(x).any():
        raise DataError(
            f"{where} holds missing (NaN or empty) values; set spec.data.preprocessing.impute to mean or median "
            "to fill them with global statistics"
        )


def read_npz(path: str, allow_missing: bool = False) -> Pool:
    """An .npz file with arrays ``x`` (records by features, or records by image) and ``y``."""
    try:
        with np.load(Path(path), allow_pickle=False) as archive:
            if "x" not in archive or "y" not in archive:
                raise DataError(
                    f"{path}: an npz data file needs arrays named 'x' and 'y' (has {sorted(archive.files)})"
                )
            x = np.asarray(archive["x"], np.float32)
            raw_y = archive["y"]
    except DataError:
        raise
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read as npz ({error})") from error
    if x.ndim < 2:
        raise DataError(f"{path}: x must hold one row (or image) per record, has shape {x.shape}")
    if raw_y.ndim != 1 or len(x) != len(raw_y):
        raise DataError(f"{path}: y must hold one label per record of x ({len(x)}), has shape {raw_y.shape}")
    _check_values(x, f"{path}: x", allow_missing)
    y, classes = _labels(raw_y, f"{path} array y")
    return Pool(x, y, classes, tuple(x.shape[1:]))


def read_csv(path: str, label_column: str, allow_missing: bool = False) -> Pool:
    """A CSV file with a header row, numeric feature columns and one numeric label column.

    An empty cell is a missing value (NaN), which only a job that imputes accepts.
    """
    try:
        with Path(path).open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read as a CSV file ({error})") from error
    if not rows:
        raise DataError(f"{path}: empty file; expected a header row and records")
    header = [name.strip() for name in rows[0]]
    if label_column not in header:
        raise DataError(
            f"{path}: no column named {label_column!r} (spec.data.labelColumn); the header has {', '.join(header)}"
        )
    records = [row for row in rows[1:] if row]
    for line, row in enumerate(records, start=2):
        if len(row) != len(header):
            raise DataError(f"{path} line {line}: {len(row)} values, but the header names {len(header)} columns")
    index = header.index(label_column)
    cells = [
        ["nan" if not value.strip() and column != index else value for column, value in enumerate(row)]
        for row in records
    ]
    try:
        table = np.array(cells, dtype=np.float64).reshape(len(records), len(header))
    except ValueError as error:
        raise DataError(f"{path}: every value must be a number or, for a missing feature, empty ({error})") from error
    if not np.isfinite(table[:, index]).all():
        raise DataError(f"{path}: column {label_column!r} holds a missing or infinite label")
    y, classes = _labels(table[:, index], f"{path} column {label_column!r}")
    x = np.delete(table, index, axis=1).astype(np.float32)
    _check_values(x, path, allow_missing)
    return Pool(x, y, classes, (x.shape[1],))


def synthetic(spec: SyntheticSpec, num_silos: int, seed: int) -> list[Pool]:
    """Synthetic(alpha, beta) of Li et al. (FedProx, MLSys 2020, Sec. 5.1), one device per silo.

    Device k draws u_k ~ N(0, alpha) and B_k ~ N(0, beta) (alpha and beta are variances,
    as in the paper's text); its model W_k ~ N(u_k, 1), b_k ~ N(u_k, 1); its inputs
    x ~ N(v_k, Sigma) with v_k's elements ~ N(B_k, 1) and Sigma diagonal, Sigma_jj = j^-1.2;
    labels are argmax(softmax(W_k x + b_k)). beta sets how much the devices' inputs
    differ. alpha, faithfully to the paper, cannot change labels: u_k adds
    u_k * (sum_j x_j + 1) to every class's logit alike, and argmax ignores a common shift;
    labels differ across devices through their own W_k, b_k and v_k. The authors' code
    draws u_k and B_k with standard deviation alpha and beta, the same at the paper's
    settings 0 and 1. Device sizes are lognormal, the paper's power law, with mean
    ``samples_per_silo`` (the authors' code: lognormal(4, 2) + 50).
    """
    rng = np.random.default_rng(seed)
    d, c = spec.num_features, spec.num_classes
    floor = min(SYNTHETIC_FLOOR, spec.samples_per_silo)
    # Lognormal with mean (samples_per_silo - floor): mu = ln(mean) - sigma^2 / 2.
    spread = max(spec.samples_per_silo - floor, 1)
    extra = rng.lognormal(np.log(spread) - _SIZE_SIGMA**2 / 2, _SIZE_SIGMA, size=num_silos)
    sizes = floor + np.round(extra).astype(int)
    variances = np.power(np.arange(1, d + 1, dtype=np.float64), -1.2)
    pools = []
    for k in range(num_silos):
        u = rng.normal(0.0, np.sqrt(spec.alpha))
        big_b = rng.normal(0.0, np.sqrt(spec.beta))
        weights = rng.normal(u, 1.0, size=(d, c))
        bias = rng.normal(u, 1.0, size=c)
        mean = rng.normal(big_b, 1.0, size=d)
        x = rng.normal(mean, np.sqrt(variances), size=(int(sizes[k]), d))
        # argmax of softmax is argmax of the logits.
        y = np.argmax(x @ weights + bias, axis=1)
        pools.append(Pool(x.astype(np.float32), y.astype(np.int64), c, (d,)))
    return pools


#: Category codes the generated categorical features take.
TABULAR_CATEGORIES = 8


def tabular(spec: TabularSpec, num_silos: int, seed: int) -> Pool:
    """A generated table on very different scales: what per-silo standardization gets wrong under label skew.

    Each class c has a latent centre mu_c ~ N(0, 0.6^2 I); a record of class c has latent
    features z ~ N(mu_c, I). Numeric feature j is ``scale_j * z_j + offset_j`` with
    ``scale_j`` log-uniform in [1e-2, 1e4] and ``offset_j`` up to five scales away from 0,
    so raw values span six orders of magnitude. Categorical features are codes 0..7 drawn
    from a class-dependent distribution. With ``missing_fraction`` that share of numeric
    values is NaN. The pool holds ``records_per_silo * num_silos`` records; the job's
    partition deals them (label skew with dirichlet), so the pooled set, and hence the
    centralized baseline, is the same whatever the partition.
    """
    rng = np.random.default_rng([seed, 0x7AB])
    d, k, c = spec.num_features, spec.num_categorical, spec.num_classes
    total = spec.records_per_silo * num_silos
    y = rng.integers(0, c, size=total)
    centres = rng.normal(0.0, 0.6, size=(c, d))
    z = centres[y] + rng.normal(0.0, 1.0, size=(total, d))
    scales = 10.0 ** rng.uniform(-2.0, 4.0, size=d)
    offsets = scales * rng.uniform(-5.0, 5.0, size=d)
    numeric = z * scales + offsets
    if spec.missing_fraction > 0:
        numeric[rng.random(numeric.shape) < spec.missing_fraction] = np.nan
    columns = [numeric]
    for _ in range(k):
        preferences = rng.dirichlet(np.full(TABULAR_CATEGORIES, 0.7), size=c)
        # Inverse-CDF sampling of each record's code from its class's distribution.
        cumulative = np.cumsum(preferences, axis=1)
        codes = (rng.random(total)[:, None] > cumulative[y]).sum(axis=1).clip(max=TABULAR_CATEGORIES - 1)
        codes = codes.astype(np.float64)
        columns.append(codes[:, None])
    x = np.concatenate(columns, axis=1).astype(np.float32)
    return Pool(x, y.astype(np.int64), c, (d + k,))
