"""Homomorphic rounds with a real hub (coordinator, mTLS gRPC, embedded Rego, audit log) and real
sidecars whose trainers answer at once: the new global model is the plaintext weighted mean of
the trainers' updates within the CKKS bound, and a key holder that never decrypts fails only its
round, which is recorded and retried without it."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from fedsilo.aggregator import JobCoordinator, RoundSummary, start_server
from fedsilo.api import FederatedJob
from fedsilo.he import HEParameters, KeyShare
from fedsilo.identity import CertificateAuthority, SigningKey, SiloIdentity
from fedsilo.protocol import TensorLayout, TrainerReply, Weights, decode_weights, encode_weights, pb, rpc
from fedsilo.registry import LocalRegistry
from fedsilo.runner import build_gate
from fedsilo.sidecar import Sidecar, SidecarConfig, Step, TrainerLinkService
from fedsilo.sidecar._homomorphic import HomomorphicEncode
from fedsilo.strategies import make_strategy

SILOS = ("silo-a", "silo-b", "silo-c")
RECORDS = {"silo-a": 100, "silo-b": 300, "silo-c": 600}
WEIGHTS: Weights = {"w": np.zeros((50, 60), np.float32), "b": np.zeros(60, np.float32)}


def _delta(silo: str, round_number: int) -> np.ndarray:
    """What each silo's trainer moves the model by, known to the test."""
    size = TensorLayout.of(WEIGHTS).size
    return np.random.default_rng([SILOS.index(silo), round_number]).uniform(-1, 1, size).astype(np.float32)


def _trainer(silo: str, link: TrainerLinkService, stop: threading.Event) -> None:
    next_round = 0
    while not stop.is_set():
        # An in-process trainer polls the link directly, not over gRPC: mark it alive as a call would.
        with link._cond:
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
            weights = decode_weights(blob)
            layout = TensorLayout.of(weights)
            local = layout.flatten(weights) + _delta(silo, task.round)
            fit = {"num_samples": RECORDS[silo], "train_loss": 1.0, "steps": 1, "batch_size": 10}
            link.complete(
                TrainerReply.model_validate({"round": task.round, "fit": fit}), encode_weights(layout.unflatten(local))
            )
        else:
            link.complete(TrainerReply.model_validate({"round": task.round}), b"")
        next_round = task.round + 1


@dataclass(frozen=True)
class _Mute(HomomorphicEncode):
    """A key holder that dies once after sending its update: that round it sends no decryption share."""

    muted: threading.Event = field(default_factory=threading.Event)

    def _decrypt(self, ref: pb.RoundRef, vector_length: int, share: KeyShare) -> None:
        if self.muted.is_set():
            self.muted.clear()  # dead for one round; what comes back is a new sidecar
            return
        super()._decrypt(ref, vector_length, share)


@dataclass
class Hub:
    coordinator: JobCoordinator
    registry: LocalRegistry
    summaries: list[RoundSummary]


def _run(tmp_path: Path, rounds: int, mute: str | None = None) -> Hub:
    job = FederatedJob.model_validate(
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "FederatedJob",
            "metadata": {"name": "he-rounds"},
            "spec": {
                "silos": list(SILOS),
                "minSilos": 2,
                "rounds": rounds,
                "roundTimeoutSeconds": 30,
                "model": {"builtin": "mlp"},
                "aggregation": {"mode": "homomorphic", "clipRange": 1.0},
                "policy": {"normCap": 1e6, "dataClass": "sensitive"},
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
    muted = threading.Event()
    if mute is not None:
        muted.set()
    for silo in SILOS:
        link = TrainerLinkService()
        config = SidecarConfig(
            job,
            silo,
            f"localhost:{port}",
            {s: k.public_key for s, k in keys.items()},
            aggregator_key=hub_key.public_key,
        )
        sidecar = Sidecar(
            config,
            SiloIdentity(keys[silo], ca.issue(silo, server=False)),
            link,
        )
        if silo == mute:
            _mute_sidecar(sidecar, muted)
        threads.append(threading.Thread(target=_trainer, args=(silo, link, stop), daemon=True))
        threads.append(threading.Thread(target=sidecar.run, daemon=True))
    for thread in threads:
        thread.start()
    try:
        summaries = coordinator.run()
    finally:
        stop.set()
        server.stop(grace=1)
    return Hub(coordinator, registry, summaries)


def _mute_sidecar(sidecar: Sidecar, muted: threading.Event) -> None:
    """Swap the sidecar's encode step for one that skips decrypting once."""
    original = sidecar.steps

    def steps(stub: rpc.AggregatorStub) -> list[Step]:
        built = original(stub)
        for index, step in enumerate(built):
            if isinstance(step, HomomorphicEncode):
                built[index] = _Mute(step.config, step.keys, step.stub, muted=muted)
        return built

    sidecar.steps = steps  # type: ignore[method-assign]


def _model(hub: Hub, round_number: int) -> np.ndarray:
    ref = hub.registry.show("he-rounds", round_number)
    return np.asarray(TensorLayout.of(WEIGHTS).flatten(hub.registry.load(ref)), dtype=np.float64)


def _clipped(delta: np.ndarray) -> np.ndarray:
    """What the sidecar's clip step makes of a delta with the job's clip range of 1."""
    return np.asarray(np.clip(delta, -1.0, 1.0), dtype=np.float64)


@pytest.mark.integration
def test_the_global_model_moves_by_the_weighted_mean_of_the_updates(tmp_path: Path) -> None:
    hub = _run(tmp_path, rounds=1)
    assert [s.round for s in hub.summaries] == [1]
    expected = sum(RECORDS[s] * _clipped(_delta(s, 1)) for s in SILOS) / sum(RECORDS.values())
    bound = HEParameters().error_bound(len(SILOS)) / sum(RECORDS.values())
    assert np.max(np.abs(_model(hub, 1) - expected)) <= bound + 1e-6  # + the float32 model's own rounding
    # The key ceremony is on record: the round's joint key and each silo's signed share.
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    (ceremony,) = [r for r in records if r["kind"] == "operation" and r["operation"] == "key_ceremony"]
    assert ceremony["round"] == 1 and sorted(ceremony["details"]["shares"]) == sorted(SILOS)
    assert ceremony["details"]["key_id"]


@pytest.mark.integration
def test_a_key_holder_that_never_decrypts_fails_only_its_round_which_is_retried(tmp_path: Path) -> None:
    hub = _run(tmp_path, rounds=2, mute="silo-c")
    # Round 1 failed (silo-c's key share was missing); rounds 2 and 3 completed the job's two rounds.
    assert [s.round for s in hub.summaries] == [2, 3]
    assert "silo-c" not in hub.summaries[0].silos
    # Round 1's updates never reached a model: round 2 starts from the initial one.
    in_round_2 = [s for s in SILOS if s in hub.summaries[0].silos]
    expected = sum(RECORDS[s] * _clipped(_delta(s, 2)) for s in in_round_2) / sum(RECORDS[s] for s in in_round_2)
    assert np.max(np.abs(_model(hub, 2) - expected)) <= 1e-4
