"""FedAvg simulated in one process, with a plain sample-weighted mean in place of secure aggregation."""

from __future__ import annotations

import numpy as np

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import load_silo_data
from fedsilo.strategies import make_strategy
from fedsilo.trainer import EvaluateConfig, build_client

from ..strategies.conftest import mean_update


def simulate(spec: FederatedJobSpec) -> list[float]:
    """Held-out accuracy after every round (silos' accuracies weighted by their held-out records)."""
    num_silos = len(spec.silos)
    clients = [build_client(spec, load_silo_data(spec, i, num_silos)) for i in range(num_silos)]
    strategy = make_strategy(spec)
    model = clients[0].get_weights()
    accuracy = []
    for round_number in range(1, spec.rounds + 1):
        config = strategy.configure_round(round_number)
        locals_ = []
        for client in clients:
            client.set_weights(model)
            result = client.fit(config)
            locals_.append((client.get_weights(), result.num_samples))
        model = strategy.aggregate(model, mean_update(model, locals_))
        scores = []
        for client in clients:
            client.set_weights(model)
            scores.append(client.evaluate(EvaluateConfig(round=round_number)))
        accuracy.append(float(np.average([s.accuracy for s in scores], weights=[s.num_samples for s in scores])))
    return accuracy
