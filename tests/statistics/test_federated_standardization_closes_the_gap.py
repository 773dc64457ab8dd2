"""Under label skew, one global scaler reaches centralized accuracy; each silo's own scaler does not."""

from __future__ import annotations

from fedsilo.baseline import train_centralized
from fedsilo.runner import run_statistics
from fedsilo.statistics import fit_preprocessing
from fedsilo_testing.simulation import simulate_fedavg

from .conftest import silos_of, tabular_spec


def test_federated_standardization_reaches_97_percent_of_centralized_where_per_silo_does_not() -> None:
    federated_spec = tabular_spec({"scaling": "standardize"})
    statistics = run_statistics("gap", federated_spec, silos_of(federated_spec)).statistics
    assert federated_spec.data.preprocessing is not None
    fitted = fit_preprocessing(statistics, federated_spec.data.preprocessing)
    federated = simulate_fedavg(federated_spec, fitted).accuracy[-1]
    centralized = train_centralized(federated_spec, 4, None, fitted).accuracy

    per_silo_spec = tabular_spec({"scaling": "silo"})
    per_silo = simulate_fedavg(per_silo_spec).accuracy[-1]
    # The per-silo job's own baseline standardizes the pooled records: the same ideal scaler.
    per_silo_centralized = train_centralized(per_silo_spec, 4).accuracy

    assert centralized > 0.7, centralized
    assert federated >= 0.97 * centralized, (federated, centralized)
    assert per_silo < 0.97 * per_silo_centralized, (per_silo, per_silo_centralized)
