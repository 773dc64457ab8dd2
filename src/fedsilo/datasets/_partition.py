"""Dealing a pooled data set to silos: IID, Dirichlet label skew, or quantity skew.

Only the local simulation partitions; in a cluster every silo reads its own data. Every
silo computes the same deterministic partition from the job's seed and keeps its part,
so no record ever passes between processes. Called by ``load_silo_data`` and
``load_pooled_data``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fedsilo.api import PartitionScheme, PartitionSpec

from ._sources import DataError

# Fewest records a silo may be dealt: enough for a training split and a held-out split
# with a few records each.
MIN_RECORDS = 10


def partition(
    labels: npt.NDArray[np.int64], num_silos: int, spec: PartitionSpec, rng: np.random.Generator
) -> list[npt.NDArray[np.int64]]:
    """Indices of the records each silo gets; together they cover every record exactly once.

    Every silo gets at least ``MIN_RECORDS``, however small ``spec.alpha`` is, so a
    skewed partition is never redrawn until it happens to fit.

    Raises:
        DataError: there are fewer than ``MIN_RECORDS`` records per silo.
    """
    if len(labels) < num_silos * MIN_RECORDS:
        raise DataError(
            f"{len(labels)} records cannot give {num_silos} silos {MIN_RECORDS} records each; use fewer silos"
        )
    if spec.scheme is PartitionScheme.IID:
        parts = np.array_split(rng.permutation(len(labels)), num_silos)
    elif spec.scheme is PartitionScheme.DIRICHLET:
        parts = _top_up(_dirichlet_labels(labels, num_silos, spec.alpha, rng), rng)
    else:
        parts = _dirichlet_sizes(len(labels), num_silos, spec.alpha, rng)
    return [np.sort(p) for p in parts]


def _dirichlet_labels(
    labels: npt.NDArray[np.int64], num_silos: int, alpha: float, rng: np.random.Generator
) -> list[npt.NDArray[np.int64]]:
    """Each class's records split across silos by proportions drawn from Dirichlet(alpha).

    The label-skew scheme of Hsu et al. (2019) used across the federated learning literature.
    """
    parts: list[list[npt.NDArray[np.int64]]] = [[] for _ in range(num_silos)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        shares = rng.dirichlet(np.full(num_silos, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
        for silo, piece in enumerate(np.split(members, cuts)):
            parts[silo].append(piece)
    return [np.concatenate(p) for p in parts]


def _top_up(parts: list[npt.NDArray[np.int64]], rng: np.random.Generator) -> list[npt.NDArray[np.int64]]:
    """Move random records from the largest silo to each silo short of ``MIN_RECORDS``.

    Only the few records needed move, so the label skew of everything else stays.
    """
    parts = [p.copy() for p in parts]
    for silo in range(len(parts)):
        while len(parts[silo]) < MIN_RECORDS:
            donor = int(np.argmax([len(p) for p in parts]))
            need = min(MIN_RECORDS - len(parts[silo]), len(parts[donor]) - MIN_RECORDS)
            moved = rng.choice(len(parts[donor]), size=need, replace=False)
            parts[silo] = np.concatenate([parts[silo], parts[donor][moved]])
            parts[donor] = np.delete(parts[donor], moved)
    return parts


def _dirichlet_sizes(total: int, num_silos: int, alpha: float, rng: np.random.Generator) -> list[npt.NDArray[np.int64]]:
    """Random records; beyond ``MIN_RECORDS`` each, silo sizes follow shares drawn from Dirichlet(alpha)."""
    shares = rng.dirichlet(np.full(num_silos, alpha))
    spare = total - num_silos * MIN_RECORDS
    sizes = MIN_RECORDS + np.floor(shares * spare).astype(int)
    # Rounding down leaves a few records over; they go to the largest shares.
    sizes[np.argsort(-shares)[: total - int(sizes.sum())]] += 1
    return list(np.split(rng.permutation(total), np.cumsum(sizes)[:-1]))
