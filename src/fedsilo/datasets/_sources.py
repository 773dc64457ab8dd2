"""Where records come from: bundled sets, the FedProx synthetic generator, or a user's file.

Nothing here downloads: scikit-learn's digits and breast-cancer sets ship inside the
package, the synthetic generator is computed, and csv/npz files are read from a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sklearn.datasets import load_breast_cancer, load_digits

from fedsilo.api import SyntheticSpec


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
    """8x8 handwritten digits (1,797 records, 10 classes), bundled with scikit-learn."""
    bunch = load_digits()
    return Pool(np.asarray(bunch.data, np.float32) / 16.0, np.asarray(bunch.target, np.int64), 10, (1, 8, 8))


def breast_cancer() -> Pool:
    """Wisconsin breast cancer (569 records, 30 features, 2 classes), bundled with scikit-learn."""
    bunch = load_breast_cancer()
    return Pool(np.asarray(bunch.data, np.float32), np.asarray(bunch.target, np.int64), 2, (30,))


def _labels(raw: npt.NDArray[np.generic], where: str) -> tuple[npt.NDArray[np.int64], int]:
    values = np.asarray(raw)
    if values.dtype.kind == "f" and not np.all(values == np.round(values)):
        raise DataError(f"{where}: labels must be whole numbers")
    labels = values.astype(np.int64)
    if labels.min() < 0:
        raise DataError(f"{where}: labels must be 0 or more")
    return labels, int(labels.max()) + 1


def read_npz(path: str) -> Pool:
    """An .npz file with arrays ``x`` (records by features, or records by image) and ``y``."""
    try:
        with np.load(Path(path), allow_pickle=False) as archive:
            if "x" not in archive or "y" not in archive:
                raise DataError(
                    f"{path}: an npz data file needs arrays named 'x' and 'y' (has {sorted(archive.files)})"
                )
            x = np.asarray(archive["x"], np.float32)
            raw_y = archive["y"]
    except (OSError, ValueError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"{path}: cannot read as npz ({error})") from error
    if len(x) != len(raw_y):
        raise DataError(f"{path}: x has {len(x)} records but y has {len(raw_y)}")
    y, classes = _labels(raw_y, path)
    return Pool(x, y, classes, tuple(x.shape[1:]))


def read_csv(path: str, label_column: str) -> Pool:
    """A CSV file with a header row, numeric feature columns and one label column."""
    try:
        with Path(path).open(encoding="utf-8") as handle:
            header = handle.readline().strip().split(",")
            table = np.loadtxt(handle, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read as numeric CSV with a header row ({error})") from error
    if label_column not in header:
        raise DataError(
            f"{path}: no column named {label_column!r} (spec.data.labelColumn); the header has {', '.join(header)}"
        )
    if table.shape[1] != len(header):
        raise DataError(f"{path}: rows have {table.shape[1]} values but the header names {len(header)} columns")
    index = header.index(label_column)
    y, classes = _labels(table[:, index], f"{path} column {label_column}")
    x = np.delete(table, index, axis=1).astype(np.float32)
    return Pool(x, y, classes, (x.shape[1],))


def synthetic(spec: SyntheticSpec, num_silos: int, seed: int) -> list[Pool]:
    """Synthetic(alpha, beta) of Li et al. (FedProx, MLSys 2020), one device per silo.

    Device k draws u_k ~ N(0, alpha) and B_k ~ N(0, beta); its model W_k, b_k ~ N(u_k, 1);
    its inputs x ~ N(v_k, Sigma) with v_k ~ N(B_k, 1) and Sigma_jj = j^-1.2; labels are
    argmax(softmax(W_k x + b_k)). Sizes follow a lognormal law around the configured mean.
    """
    rng = np.random.default_rng(seed)
    d, c = spec.num_features, spec.num_classes
    sizes = rng.lognormal(mean=np.log(spec.samples_per_silo), sigma=0.5, size=num_silos).astype(int)
    sizes = np.clip(sizes, 40, None)
    sigma = np.power(np.arange(1, d + 1, dtype=np.float64), -1.2)
    pools = []
    for k in range(num_silos):
        u = rng.normal(0.0, np.sqrt(spec.alpha))
        big_b = rng.normal(0.0, np.sqrt(spec.beta))
        weights = rng.normal(u, 1.0, size=(d, c))
        bias = rng.normal(u, 1.0, size=c)
        mean = rng.normal(big_b, 1.0, size=d)
        x = rng.normal(mean, np.sqrt(sigma), size=(int(sizes[k]), d))
        y = np.argmax(x @ weights + bias, axis=1)
        pools.append(Pool(x.astype(np.float32), y.astype(np.int64), c, (d,)))
    return pools
