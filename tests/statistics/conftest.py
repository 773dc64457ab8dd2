"""Jobs on the generated tabular workload, and their silos with fresh identities."""

from __future__ import annotations

from typing import Any

from fedsilo.api import FederatedJobSpec
from fedsilo.identity import SigningKey
from fedsilo.statistics import SiloRecords, job_silos

SILOS = ["bank-a", "bank-b", "bank-c", "bank-d"]


def tabular_spec(
    preprocessing: dict[str, Any] | None = None, tabular: dict[str, Any] | None = None, **overrides: Any
) -> FederatedJobSpec:
    """Four silos of label-skewed tabular records on six orders of magnitude of scale."""
    data: dict[str, Any] = {
        "source": "tabular",
        "tabular": {"recordsPerSilo": 1500, **(tabular or {})},
        "partition": {"scheme": "dirichlet", "alpha": 0.3},
        "preprocessing": preprocessing if preprocessing is not None else {"scaling": "standardize"},
    }
    document: dict[str, Any] = {
        "silos": SILOS,
        "minSilos": 3,
        "rounds": 10,
        "seed": 3,
        "model": {"builtin": "logistic_regression"},
        "data": data,
        "training": {"localEpochs": 1, "batchSize": 64, "learningRate": 0.1},
    }
    document.update(overrides)
    return FederatedJobSpec.model_validate(document)


def silos_of(spec: FederatedJobSpec, **options: Any) -> list[SiloRecords]:
    """The job's silos, each with its raw training records and a fresh identity key."""
    return job_silos(spec, {name: SigningKey.generate() for name in spec.silos}, **options)
