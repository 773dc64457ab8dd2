"""FedAvg with the trainer's own clients in one process: per-silo quality with and without personalization.

The quality test and ``benchmarks/bench_personalization.py`` need many whole jobs (data
sets x skews x seeds x methods); a local run of each (hub, sidecars, sandboxed trainers,
mTLS) costs a minute, so this runs the same learning arithmetic in one process: each
silo's real ``build_client`` on its real partition (``load_silo_data``), the real strategy
(``make_strategy``) on the record-weighted mean update, each silo's score of the final
model through the hub's own ``ModelQuality``, and ``fine_tune`` as the trainer runs it.
What it leaves out is transport only: signing, masking (whose fixed point rounds each
update to 2**-bits), policy and ledgers; each update is clipped by the sidecar's own
``prepare_update``. ``tests/e2e/test_personalized_run.py`` runs the
same personalization through a real local run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from fedsilo.aggregator import ModelQuality
from fedsilo.api import FederatedJob, FederatedJobSpec
from fedsilo.datasets import load_silo_data
from fedsilo.protocol import EvaluationReport, TensorLayout, Weights
from fedsilo.sidecar import prepare_update
from fedsilo.strategies import make_strategy
from fedsilo.trainer import EvaluateConfig, TrainerClient, build_client, fine_tune


@dataclass(frozen=True)
class Simulated:
    """Each silo's score of the federated model, and after fine-tuning when the job fine-tunes."""

    federated: ModelQuality
    personalized: ModelQuality | None


def job_spec(**spec: Any) -> FederatedJobSpec:
    """A FederatedJob spec from camelCase fields, validated as a manifest would be."""
    document = {"apiVersion": "fedsilo.io/v1alpha1", "kind": "FederatedJob", "metadata": {"name": "sim"}, "spec": spec}
    return FederatedJob.model_validate(document).spec


def _scores(
    spec: FederatedJobSpec, clients: list[TrainerClient], stage: Literal["global", "personalized"], round_number: int
) -> ModelQuality:
    reports = {}
    for index, client in enumerate(clients):
        result = client.evaluate(EvaluateConfig(round=round_number))
        name = spec.silos[index]
        reports[name] = EvaluationReport(
            job="sim",
            round=round_number,
            silo=name,
            nonce=f"n{index}",
            loss=result.loss,
            accuracy=result.accuracy,
            num_samples=result.num_samples,
            stage=stage,
        )
    quality = ModelQuality.of(round_number, stage, reports)
    assert quality is not None
    return quality


def simulate(spec: FederatedJobSpec) -> Simulated:
    """Run ``spec``'s rounds with FedAvg-style weighting; every silo's score of the final model."""
    silos = len(spec.silos)
    clients = [build_client(spec, load_silo_data(spec, i, silos)) for i in range(silos)]
    weights: Weights = clients[0].get_weights()
    layout = TensorLayout.of(weights)
    strategy = make_strategy(spec)
    for round_number in range(1, spec.rounds + 1):
        config = strategy.configure_round(round_number)
        global_vector = layout.flatten(weights)
        total = np.zeros(layout.size, np.float64)
        records = 0
        for client in clients:
            client.set_weights(weights)
            result = client.fit(config)
            update = prepare_update(
                global_vector, layout.flatten(client.get_weights()), spec.policy.norm_cap, spec.aggregation.clip_range
            )
            total += update.delta.astype(np.float64) * result.num_samples
            records += result.num_samples
        weights = strategy.aggregate(weights, layout.unflatten((total / records).astype(np.float32)))
    for client in clients:
        client.set_weights(weights)
    federated = _scores(spec, clients, "global", spec.rounds)
    personal = spec.personalization
    if personal is None or not personal.fine_tune_epochs:
        return Simulated(federated, None)
    for client in clients:
        fine_tune(client, spec)
    return Simulated(federated, _scores(spec, clients, "personalized", spec.rounds))
