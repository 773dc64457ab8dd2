"""FedAvg simulated in one process (``fedsilo_testing.simulation``), as the baseline tests compare it."""

from __future__ import annotations

from fedsilo.api import FederatedJobSpec
from fedsilo_testing.simulation import simulate_fedavg


def simulate(spec: FederatedJobSpec) -> list[float]:
    """Held-out accuracy after every round (silos' accuracies weighted by their held-out records)."""
    return list(simulate_fedavg(spec).accuracy)
