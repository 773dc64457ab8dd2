"""A round's checkpoint reads back exactly as written, and a damaged one is refused naming its file and the way out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fedsilo.aggregator import CheckpointError, Checkpoints, RoundSummary, SiloRoundStats
from fedsilo.api import FederatedJob
from fedsilo.identity import SigningKey, sha256_digest
from fedsilo.protocol import GlobalModelClaim, Weights, encode_weights
from fedsilo.registry import ModelSeal
from fedsilo.strategies import FedAdam, FedAvg, make_strategy

from .conftest import job_document

WEIGHTS: Weights = {
    "layer.weight": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "layer.bias": np.array([0.5, -1.25, 3.0], dtype=np.float32),
}


def _seal(weights: Weights, round_number: int) -> ModelSeal:
    claim = GlobalModelClaim(
        job="job",
        round=round_number,
        model_digest=sha256_digest(encode_weights(weights)),
        parent_digest=None,
        lineage_digest=None,
    ).canonical_bytes()
    return ModelSeal(claim, SigningKey.generate().sign(claim))


def _summary(round_number: int, weights: Weights, accepted: tuple[str, ...] = ("a", "b")) -> RoundSummary:
    return RoundSummary(
        round=round_number,
        participants=("a", "b", "c"),
        accepted=accepted,
        dropped=("c",),
        denied={},
        seconds=1.5,
        model_digest=sha256_digest(encode_weights(weights)),
        silos={"a": SiloRoundStats(bytes_up=10, bytes_down=20, accepted=True, epsilon_round=0.25)},
        loss=0.5,
        accuracy=0.75,
    )


def _write(tmp_path: Path, rounds: int = 2, state: dict[str, np.ndarray] | None = None) -> Checkpoints:
    checkpoints = Checkpoints(tmp_path, ledger_run="job/run-1")
    summaries = [_summary(n, WEIGHTS) for n in range(1, rounds + 1)]
    for n in range(rounds + 1):
        checkpoints.write("job", "fedadam", WEIGHTS, state or {}, _seal(WEIGHTS, n), summaries[:n])
    return checkpoints


def test_a_checkpoint_reads_back_the_model_the_strategy_state_and_every_round(tmp_path: Path) -> None:
    job = FederatedJob.model_validate(job_document(["a", "b", "c"], strategy={"name": "fedadam"}))
    adam = make_strategy(job.spec)
    assert isinstance(adam, FedAdam)
    adam.aggregate(WEIGHTS, {k: v * 0.1 for k, v in WEIGHTS.items()})
    checkpoints = _write(tmp_path, state=adam.state())
    assert checkpoints.rounds() == [0, 1, 2]
    latest = checkpoints.latest()
    assert latest is not None and latest.round == 2
    assert all(np.array_equal(latest.weights[k], WEIGHTS[k]) for k in WEIGHTS)
    assert list(latest.weights) == list(WEIGHTS)
    restored = make_strategy(job.spec)
    restored.restore(latest.strategy_state)
    assert all(np.array_equal(restored.state()[k], adam.state()[k]) for k in adam.state())
    assert [s.round for s in latest.summaries()] == [1, 2]
    assert latest.summaries()[0].silos["a"].epsilon_round == 0.25
    assert latest.document.ledger_run == "job/run-1"
    assert latest.document.contributors() == {"a", "b"}


def test_the_json_is_written_last_so_a_leftover_temporary_file_is_no_checkpoint(tmp_path: Path) -> None:
    checkpoints = _write(tmp_path, rounds=1)
    (checkpoints.directory / "round-00002.json.tmp").write_text("{")
    (checkpoints.directory / "round-00002.safetensors").write_bytes(b"half")
    assert checkpoints.rounds() == [0, 1]
    latest = checkpoints.latest()
    assert latest is not None and latest.round == 1


def test_an_edited_checkpoint_is_refused_naming_the_file_and_the_rollback(tmp_path: Path) -> None:
    checkpoints = _write(tmp_path)
    path = checkpoints.path(2)
    document = json.loads(path.read_text())
    document["round"] = 1
    path.write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match=r"round-00002\.json holds round 1.*fedsilo models rollback"):
        checkpoints.latest()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda text: text.replace('"round":2', '"round":2,"round":2', 1), "duplicate key"),
        (lambda text: text.replace('"strategy":"fedadam"', '"strategy":"fedadam","extra":1'), "extra"),
        (lambda text: text[: len(text) // 2], "not JSON"),
        (lambda text: text.replace('"format":"fedsilo.checkpoint/v1"', '"format":"other/v9"'), "format"),
    ],
    ids=["duplicate-key", "unknown-field", "truncated", "wrong-format"],
)
def test_a_malformed_checkpoint_document_is_refused_naming_the_file(
    tmp_path: Path, damage: object, message: str
) -> None:
    checkpoints = _write(tmp_path)
    path = checkpoints.path(2)
    path.write_text(damage(path.read_text()))  # type: ignore[operator]
    with pytest.raises(CheckpointError, match=message) as refused:
        checkpoints.latest()
    assert str(path) in str(refused.value)


def test_tensors_that_are_not_the_ones_the_document_names_are_refused(tmp_path: Path) -> None:
    checkpoints = _write(tmp_path)
    tensors = checkpoints.path(2).with_suffix(".safetensors")
    data = bytearray(tensors.read_bytes())
    data[-1] ^= 1
    tensors.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"round-00002\.safetensors do not match the digest"):
        checkpoints.latest()
    tensors.unlink()
    with pytest.raises(CheckpointError, match=r"round-00002\.safetensors cannot be read"):
        checkpoints.latest()


def test_asking_for_a_round_without_a_checkpoint_names_the_rounds_there_are(tmp_path: Path) -> None:
    checkpoints = _write(tmp_path)
    with pytest.raises(CheckpointError, match=r"no checkpoint of round 7 .*checkpointed rounds: 0, 1, 2"):
        checkpoints.load(7)


def test_strategies_refuse_state_that_is_not_theirs() -> None:
    job = FederatedJob.model_validate(job_document(["a", "b", "c"]))
    fedavg = make_strategy(job.spec)
    assert isinstance(fedavg, FedAvg) and fedavg.state() == {}
    with pytest.raises(ValueError, match="keeps no state"):
        fedavg.restore({"m/x": np.zeros(1, dtype=np.float32)})
    adam = FedAdam(job.spec)
    with pytest.raises(ValueError, match="expected m/<tensor>"):
        adam.restore({"w/x": np.zeros(1, dtype=np.float32)})
    with pytest.raises(ValueError, match="different tensors"):
        adam.restore({"m/x": np.zeros(1, dtype=np.float32)})
