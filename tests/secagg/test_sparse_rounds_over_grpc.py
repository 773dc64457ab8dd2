"""A masked job on the sparse neighbour graph with a real hub (coordinator, mTLS gRPC, embedded
Rego, audit log) and real sidecars whose trainers answer at once: the global model moves by the
weighted mean of the updates, and the round's graph (kind, degree, threshold, seed) is in the
audit log and the round's summary."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fedsilo.aggregator import JobCoordinator, start_server
from fedsilo.api import FederatedJob
from fedsilo.identity import CertificateAuthority, SigningKey, SiloIdentity
from fedsilo.protocol import TensorLayout, TrainerReply, Weights, decode_weights, encode_weights
from fedsilo.registry import LocalRegistry
from fedsilo.runner import build_gate
from fedsilo.secagg import graph_seed
from fedsilo.sidecar import Sidecar, SidecarConfig, TrainerLinkService
from fedsilo.strategies import make_strategy

# Eight silos, one of them colluding and one dropping: the bound takes degree 4 and threshold 2.
SILOS = tuple(f"silo-{i}" for i in range(8))
RECORDS = {silo: 100 * (i + 1) for i, silo in enumerate(SILOS)}
WEIGHTS: Weights = {"w": np.zeros((20, 30), np.float32), "b": np.zeros(30, np.float32)}


def _delta(silo: str) -> np.ndarray:
    size = TensorLayout.of(WEIGHTS).size
    return np.random.default_rng(SILOS.index(silo)).uniform(-1, 1, size).astype(np.float32)


def _trainer(silo: str, link: TrainerLinkService, stop: threading.Event) -> None:
    """Answers each task at once: the model it was given plus this silo's known delta."""
    next_round = 0
    while not stop.is_set():
        with link._cond:  # an in-process trainer makes no gRPC call: mark it alive as a call would
            link._last_call = time.monotonic()
        offered = link.next_task(next_round, 0.5)
        if offered is None:
            continue
        task, blob = offered
        if task.kind == "finished":
            return
        if task.kind == "hello":
            link.complete(TrainerReply(round=0, num_samples=RECORDS[silo]), b"")
        elif task.kind == "fit":
            layout = TensorLayout.of(decode_weights(blob))
            local = layout.flatten(decode_weights(blob)) + _delta(silo)
            fit = {"num_samples": RECORDS[silo], "train_loss": 1.0, "steps": 1, "batch_size": 10}
            reply = TrainerReply.model_validate({"round": task.round, "fit": fit})
            link.complete(reply, encode_weights(layout.unflatten(local)))
        else:
            link.complete(TrainerReply.model_validate({"round": task.round}), b"")
        next_round = task.round + 1


@pytest.mark.integration
def test_a_sparse_masked_round_sums_the_updates_and_records_its_graph(tmp_path: Path) -> None:
    job = FederatedJob.model_validate(
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "FederatedJob",
            "metadata": {"name": "sparse"},
            "spec": {
                "silos": list(SILOS),
                "minSilos": len(SILOS),
                "rounds": 1,
                "roundTimeoutSeconds": 60,
                "model": {"builtin": "mlp"},
                "aggregation": {
                    "clipRange": 1.0,
                    "neighbours": {"graph": "sparse", "colludingFraction": 0.125, "dropoutFraction": 0.125},
                },
                "policy": {"normCap": 1e6, "dataClass": "internal"},
            },
        }
    )
    ca = CertificateAuthority.create()
    keys = {silo: SigningKey.generate() for silo in SILOS}
    hub_key = SigningKey.generate()
    registry = LocalRegistry(tmp_path / "registry")
    coordinator = JobCoordinator(
        job,
        {s: k.public_key for s, k in keys.items()},
        WEIGHTS,
        make_strategy(job.spec),
        registry,
        build_gate(tmp_path, hub_key),
        model_key=hub_key,
        silo_ceilings=dict.fromkeys(SILOS),
    )
    server, port = start_server(
        coordinator, "localhost:0", ca.issue("aggregator", server=True, dns_names=("localhost",))
    )
    stop = threading.Event()
    threads = []
    for silo in SILOS:
        link = TrainerLinkService()
        config = SidecarConfig(
            job,
            silo,
            f"localhost:{port}",
            {s: k.public_key for s, k in keys.items()},
            aggregator_key=hub_key.public_key,
        )
        sidecar = Sidecar(config, SiloIdentity(keys[silo], ca.issue(silo, server=False)), link)
        threads.append(threading.Thread(target=_trainer, args=(silo, link, stop), daemon=True))
        threads.append(threading.Thread(target=sidecar.run, daemon=True))
    for thread in threads:
        thread.start()
    try:
        (summary,) = coordinator.run()
    finally:
        stop.set()
        server.stop(grace=1)

    assert summary.void is None and sorted(summary.accepted) == sorted(SILOS)
    model = TensorLayout.of(WEIGHTS).flatten(registry.load(registry.show("sparse", 1))).astype(np.float64)
    expected = sum(RECORDS[s] * np.clip(_delta(s), -1.0, 1.0).astype(np.float64) for s in SILOS) / sum(RECORDS.values())
    np.testing.assert_allclose(model, expected, atol=1e-4)

    seed = graph_seed("sparse", 1).hex()
    assert summary.graph is not None
    assert {k: summary.graph[k] for k in ("graph", "degree", "threshold", "seed")} == {
        "graph": "sparse",
        "degree": 4,
        "threshold": 2,
        "seed": seed,
    }
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    (graph,) = [r for r in records if r["kind"] == "operation" and r["operation"] == "neighbour_graph"]
    assert graph["round"] == 1 and graph["details"]["seed"] == seed and graph["details"]["degree"] == 4
    assert graph["details"]["colluding_fraction"] == 0.125 and graph["details"]["hub"] == "curious"
