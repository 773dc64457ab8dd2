"""Dealing a pooled data set to silos: IID, Dirichlet label skew, or quantity skew.

Only the local simulation partitions; in a cluster every silo reads its own data. Every
silo computes the same deterministic partition from the job's seed and keeps its part,
so no record ever passes between processes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fedsilo.api import PartitionScheme, PartitionSpec

# Fewest training records a silo may be dealt; a silo with less cannot fill one batch.
MIN_RECORDS = 10
_ATTEMPTS = 100


def partition(
    labels: npt.NDArray[np.int64], num_silos: int, spec: PartitionSpec, rng: np.random.Generator
) -> list[npt.NDArray[np.int64]]:
    """Indices of the records each silo gets; together they cover every record exactly once."""
    if len(labels) < num_silos * MIN_RECORDS:
        raise ValueError(f"{len(labels)} records cannot give {num_silos} silos {MIN_RECORDS} records each")
    if spec.scheme is PartitionScheme.IID:
        return [np.sort(part) for part in np.array_split(rng.permutation(len(labels)), num_silos)]
    for _ in range(_ATTEMPTS):
        parts = (
            _dirichlet_labels(labels, num_silos, spec.alpha, rng)
            if spec.scheme is PartitionScheme.DIRICHLET
            else (_dirichlet_sizes(len(labels), num_silos, spec.alpha, rng))
        )
        if min(len(p) for p in parts) >= MIN_RECORDS:
            return [np.sort(p) for p in parts]
    raise ValueError(
        f"could not give every silo {MIN_RECORDS} records with alpha {spec.alpha}; "
        "raise spec.data.partition.alpha or use fewer silos"
    )


def _dirichlet_labels(
    labels: npt.NDArray[np.int64], num_silos: int, alpha: float, rng: np.random.Generator
) -> list[npt.NDArray[np.int64]]:
    """Each class's records split across silos by proportions drawn from Dirichlet(alpha)."""
    parts: list[list[npt.NDArray[np.int64]]] = [[] for _ in range(num_silos)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        shares = rng.dirichlet(np.full(num_silos, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
        for silo, piece in enumerate(np.split(members, cuts)):
            parts[silo].append(piece)
    return [np.concatenate(p) for p in parts]


def _dirichlet_sizes(total: int, num_silos: int, alpha: float, rng: np.random.Generator) -> list[npt.NDArray[np.int64]]:
    """Random records, but silo sizes drawn from Dirichlet(alpha)."""
    shares = rng.dirichlet(np.full(num_silos, alpha))
    cuts = (np.cumsum(shares)[:-1] * total).astype(int)
    return list(np.split(rng.permutation(total), cuts))
