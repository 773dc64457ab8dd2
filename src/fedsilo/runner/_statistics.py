"""The statistics phase of a local run, and ``fedsilo stats``: silos' raw records in, files out.

``statistics_phase`` runs ``fedsilo.statistics.run_statistics`` over the manifest's silos
(each silo's records loaded as its own trainer would load them, its own ledger charged when
the statistics are private), fits the job's preprocessing when the job asks for one, and
writes ``statistics.json``, ``histograms.png`` and ``preprocessing.json`` into ``out``.
``LocalRun`` calls it before training and hands ``preprocessing.json`` to every trainer;
the command calls it alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fedsilo.api import Manifest
from fedsilo.datasets import PREPROCESSING_FILE, FittedPreprocessing
from fedsilo.identity import SigningKey
from fedsilo.statistics import FederatedStatistics, fit_preprocessing, job_silos, run_statistics, write_histograms

STATISTICS_FILE = "statistics.json"
HISTOGRAMS_FILE = "histograms.png"


@dataclass(frozen=True)
class StatisticsFiles:
    """What a statistics phase released and where it wrote it."""

    statistics: FederatedStatistics
    preprocessing: FittedPreprocessing | None
    json: Path
    plot: Path
    preprocessing_path: Path | None


def statistics_phase(
    manifest: Manifest,
    out: Path,
    *,
    run_name: str,
    keys: Mapping[str, SigningKey] | None = None,
    ledgers: Path | None = None,
) -> StatisticsFiles:
    """Run the phase, fit the preprocessing the job asks for, and write the three files into ``out``.

    ``keys`` are the silos' identity keys (fresh ones when None: a stand-alone statistics
    job). ``ledgers`` is the directory of the silos' ledgers (``silos/<name>.sqlite``),
    charged when ``spec.data.preprocessing.epsilon`` is set.

    Raises:
        DataError: the settings do not fit the data (the message names the field or file).
        StatisticsError: too few silos could take part (the message names them and why).
    """
    spec = manifest.job.spec
    identities = dict(keys) if keys is not None else {name: SigningKey.generate() for name in spec.silos}
    private = spec.data.preprocessing is not None and spec.data.preprocessing.epsilon is not None
    silos = job_silos(
        spec,
        identities,
        own_files={s.metadata.name: s.spec.data.path for s in manifest.silos if s.spec.data.path},
        ledgers={name: ledgers / "silos" / f"{name}.sqlite" for name in spec.silos} if private and ledgers else None,
        ceilings={s.metadata.name: s.spec.max_epsilon for s in manifest.silos},
    )
    outcome = run_statistics(run_name, spec, silos)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / STATISTICS_FILE
    json_path.write_bytes(outcome.statistics.canonical_bytes())
    plot = write_histograms(outcome.statistics, out / HISTOGRAMS_FILE)
    fitted = None
    fitted_path = None
    preprocessing = spec.data.preprocessing
    if preprocessing is not None and preprocessing.federated:
        fitted = fit_preprocessing(outcome.statistics, preprocessing)
        fitted_path = fitted.write(out / PREPROCESSING_FILE)
    return StatisticsFiles(outcome.statistics, fitted, json_path, plot, fitted_path)
