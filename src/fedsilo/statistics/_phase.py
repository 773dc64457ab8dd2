"""What each silo brings to a statistics phase: its records (loaded as its trainer loads them), identity and ledger.

``job_silos`` is called by ``fedsilo.runner`` for ``fedsilo stats``, the standalone tool that runs
each silo's part in a thread against the aggregator's gRPC service; in a job (``fedsilo run``,
pods) each silo's trainer process reads its own records instead (``totals.RecordTotals``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import load_raw_silo_data
from fedsilo.identity import SigningKey


@dataclass(frozen=True)
class SiloRecords:
    """What one silo brings to the phase: its name, its training records, its identity and ledger."""

    name: str
    records: npt.NDArray[np.floating]
    signing_key: SigningKey
    ledger: Path | None = None
    max_epsilon: float | None = None


def job_silos(
    spec: FederatedJobSpec,
    keys: Mapping[str, SigningKey],
    *,
    own_files: Mapping[str, str] | None = None,
    ledgers: Mapping[str, Path] | None = None,
    ceilings: Mapping[str, float | None] | None = None,
) -> list[SiloRecords]:
    """Each silo of ``spec`` with its raw training records, as its own process would load them."""
    files, ledger_paths, limits = own_files or {}, ledgers or {}, ceilings or {}
    return [
        SiloRecords(
            name,
            load_raw_silo_data(spec, index, len(spec.silos), files.get(name)).train_x,
            keys[name],
            ledger_paths.get(name),
            limits.get(name),
        )
        for index, name in enumerate(spec.silos)
    ]
