"""Homomorphic rounds with a real hub (coordinator, mTLS gRPC, embedded Rego, audit log) and real
sidecars whose trainers answer at once (``fedsilo_testing.loopback_job``): the new global model is
the plaintext weighted mean of the trainers' updates within the CKKS bound, and a key holder that
never decrypts fails only its round, which is recorded and retried without it."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from fedsilo.api import FederatedJob
from fedsilo.he import HEParameters, KeyShare
from fedsilo.protocol import TensorLayout, Weights, pb, rpc
from fedsilo.sidecar import Sidecar, Step
from fedsilo.sidecar._homomorphic import HomomorphicEncode
from fedsilo_testing.loopback_job import LoopbackRun, MakeSidecar, run_loopback_job

SILOS = ("silo-a", "silo-b", "silo-c")
RECORDS = {"silo-a": 100, "silo-b": 300, "silo-c": 600}
WEIGHTS: Weights = {"w": np.zeros((50, 60), np.float32), "b": np.zeros(60, np.float32)}


def _delta(silo: str, round_number: int) -> np.ndarray:
    """What each silo's trainer moves the model by, known to the test."""
    size = TensorLayout.of(WEIGHTS).size
    return np.random.default_rng([SILOS.index(silo), round_number]).uniform(-1, 1, size).astype(np.float32)


@dataclass(frozen=True)
class _Mute(HomomorphicEncode):
    """A key holder that dies once after sending its update: that round it sends no decryption share."""

    muted: threading.Event = field(default_factory=threading.Event)

    def _decrypt(self, ref: pb.RoundRef, vector_length: int, share: KeyShare) -> None:
        if self.muted.is_set():
            self.muted.clear()  # dead for one round; what comes back is a new sidecar
            return
        super()._decrypt(ref, vector_length, share)


def _run(tmp_path: Path, rounds: int, mute: str | None = None) -> LoopbackRun:
    """The job on the loopback harness; ``mute``'s key holder sends no decryption share in its first round."""
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
    key_holders: dict[str, MakeSidecar] = {}
    if mute is not None:
        muted = threading.Event()
        muted.set()
        key_holders[mute] = lambda config, identity, link: _mute_sidecar(Sidecar(config, identity, link), muted)
    return run_loopback_job(job, WEIGHTS, RECORDS, _delta, tmp_path, key_holders)


def _mute_sidecar(sidecar: Sidecar, muted: threading.Event) -> Sidecar:
    """The sidecar with its encode step swapped for one that skips decrypting once."""
    original = sidecar.steps

    def steps(stub: rpc.AggregatorStub) -> list[Step]:
        built = original(stub)
        for index, step in enumerate(built):
            if isinstance(step, HomomorphicEncode):
                built[index] = _Mute(step.config, step.keys, step.stub, muted=muted)
        return built

    sidecar.steps = steps  # type: ignore[method-assign]
    return sidecar


def _model(run: LoopbackRun, round_number: int) -> np.ndarray:
    (index,) = [i for i, summary in enumerate(run.summaries, start=1) if summary.round == round_number]
    return np.asarray(run.models[index], dtype=np.float64)


def _clipped(delta: np.ndarray) -> np.ndarray:
    """What the sidecar's clip step makes of a delta with the job's clip range of 1."""
    return np.asarray(np.clip(delta, -1.0, 1.0), dtype=np.float64)


@pytest.mark.integration
def test_the_global_model_moves_by_the_weighted_mean_of_the_updates(tmp_path: Path) -> None:
    run = _run(tmp_path, rounds=1)
    assert [s.round for s in run.summaries] == [1]
    expected = sum(RECORDS[s] * _clipped(_delta(s, 1)) for s in SILOS) / sum(RECORDS.values())
    bound = HEParameters().error_bound(len(SILOS)) / sum(RECORDS.values())
    assert np.max(np.abs(_model(run, 1) - expected)) <= bound + 1e-6  # + the float32 model's own rounding
    # The key ceremony is on record: the round's joint key and each silo's signed share.
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    (ceremony,) = [r for r in records if r["kind"] == "operation" and r["operation"] == "key_ceremony"]
    assert ceremony["round"] == 1 and sorted(ceremony["details"]["shares"]) == sorted(SILOS)
    assert ceremony["details"]["key_id"]


@pytest.mark.integration
def test_a_key_holder_that_never_decrypts_fails_only_its_round_which_is_retried(tmp_path: Path) -> None:
    run = _run(tmp_path, rounds=2, mute="silo-c")
    # Round 1 failed (silo-c's key share was missing); rounds 2 and 3 completed the job's two rounds.
    assert [s.round for s in run.summaries] == [2, 3]
    assert "silo-c" not in run.summaries[0].silos
    # Round 1's updates never reached a model: round 2 starts from the initial one.
    in_round_2 = [s for s in SILOS if s in run.summaries[0].silos]
    expected = sum(RECORDS[s] * _clipped(_delta(s, 2)) for s in in_round_2) / sum(RECORDS[s] for s in in_round_2)
    assert np.max(np.abs(_model(run, 2) - expected)) <= 1e-4
