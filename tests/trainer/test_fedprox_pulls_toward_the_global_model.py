"""FedProx's proximal term keeps the local model nearer the global model it received."""

from __future__ import annotations

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import SiloData
from fedsilo.trainer import build_client

from .conftest import distance, fit_config


def drift(spec: FederatedJobSpec, data: SiloData, mu: float) -> float:
    client = build_client(spec, data)
    client.fit(fit_config(round=1))
    global_model = client.get_weights()
    client.set_weights(global_model)
    client.fit(fit_config(round=2, local_epochs=3, proximal_mu=mu))
    return distance(client.get_weights(), global_model)


def test_a_larger_mu_ends_nearer_the_global_model(spec: FederatedJobSpec, data: SiloData) -> None:
    free, held, tight = drift(spec, data, 0.0), drift(spec, data, 0.1), drift(spec, data, 2.0)
    assert free > held > tight
    assert tight < 0.5 * free


def test_the_anchor_is_the_model_last_set_not_the_start_of_each_fit(spec: FederatedJobSpec, data: SiloData) -> None:
    # Several fits without a set_weights between them stay near the global model; anchored at
    # the start of each fit instead, the drift would add up (about 0.7 after four fits here).
    client = build_client(spec, data)
    global_model = client.get_weights()
    for round_number in range(1, 5):
        client.fit(fit_config(round=round_number, proximal_mu=5.0))
    assert distance(client.get_weights(), global_model) < 0.4
