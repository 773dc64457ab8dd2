"""FedAvg simulated in one process, with a plain sample-weighted mean in place of secure aggregation.

For tests and benchmarks that compare federated with centralized accuracy many times
over (seeds, partitions, preprocessing choices) where a whole ``fedsilo run`` per point
would take minutes. The silos train exactly the clients a trainer builds, on exactly the
data ``load_silo_data`` gives them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fedsilo.api import FederatedJobSpec, PrivacyMode
from fedsilo.datasets import FittedPreprocessing, load_silo_data
from fedsilo.privacy import plan_for_silo
from fedsilo.protocol import Weights
from fedsilo.strategies import DpSgdConfig, make_strategy
from fedsilo.trainer import EvaluateConfig, build_client


@dataclass(frozen=True)
class SimulatedRun:
    """Held-out accuracy after every round (weighted by held-out records) and each silo's at the end."""

    accuracy: tuple[float, ...]
    silo_accuracy: tuple[float, ...]


def mean_update(global_weights: Weights, locals_: list[tuple[Weights, int]]) -> Weights:
    """The sample-weighted mean of ``local - global``: what secure aggregation hands a strategy."""
    total = sum(n for _, n in locals_)
    return {
        k: np.asarray(sum(n * (local[k] - v) for local, n in locals_) / total, dtype=np.float32)
        for k, v in global_weights.items()
    }


def simulate_fedavg(spec: FederatedJobSpec, preprocessing: FittedPreprocessing | None = None) -> SimulatedRun:
    """Run ``spec``'s rounds in this process; ``preprocessing`` is the job's fitted transform, if it has one.

    A job with ``privacy.mode: record`` trains every silo with DP-SGD at the noise the
    sidecar's planner (``plan_for_silo``) calibrates from the silo's own record count.
    """
    num_silos = len(spec.silos)
    data = [load_silo_data(spec, i, num_silos, None, preprocessing) for i in range(num_silos)]
    clients = [build_client(spec, d) for d in data]
    plans = [plan_for_silo(spec, len(d.train_y)) for d in data]
    if spec.privacy.mode is PrivacyMode.SILO:
        raise ValueError("the in-process simulation runs record-level DP only; silo mode needs the sidecar's noise")
    strategy = make_strategy(spec)
    model = clients[0].get_weights()
    accuracy = []
    silo_accuracy: list[float] = []
    for round_number in range(1, spec.rounds + 1):
        config = strategy.configure_round(round_number)
        locals_ = []
        for client, plan in zip(clients, plans, strict=True):
            client.set_weights(model)
            dp = plan.fit_dp() if plan is not None else None
            result = client.fit(config if dp is None else replace(config, dp=DpSgdConfig(**dp)))
            locals_.append((client.get_weights(), result.num_samples))
        model = strategy.aggregate(model, mean_update(model, locals_))
        scores = []
        for client in clients:
            client.set_weights(model)
            scores.append(client.evaluate(EvaluateConfig(round=round_number)))
        silo_accuracy = [s.accuracy for s in scores]
        accuracy.append(float(np.average(silo_accuracy, weights=[s.num_samples for s in scores])))
    return SimulatedRun(tuple(accuracy), tuple(silo_accuracy))
