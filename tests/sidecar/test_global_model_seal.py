"""A sidecar trains only on a global model the job's hub signed, and the registry keeps the seal for auditors.

A real hub (coordinator behind mTLS, embedded Rego gate) and a real ``Sidecar`` with an
in-process trainer: the sidecar refuses a model signed with another key, a model whose
bytes are not the signed ones, and the trainer never sees either; an honest job's registry
verifies offline with ``fedsilo models verify`` and one tampered model fails it, named by
its round.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest

from fedsilo.cli import main as fedsilo_main
from fedsilo.identity import SigningKey, SiloIdentity, VerifyKey, sha256_digest
from fedsilo.protocol import (
    GlobalModelClaim,
    PolicyVerdict,
    RoundPlan,
    TensorLayout,
    TrainerReply,
    decode_weights,
    encode_weights,
)
from fedsilo.sidecar import Sidecar, SidecarConfig, TrainerLinkService, read_aggregator_key
from fedsilo.sidecar._model_check import ModelCheck, ModelRefused

from ..aggregator.conftest import Hub, running_hub


@dataclass
class Trainer:
    """An instant trainer on the link: records every task it is given, answers fit tasks with a small step."""

    link: TrainerLinkService
    tasks: list[tuple[str, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        next_round = 0
        while not self.stop.is_set():
            offered = self.link.next_task(next_round, 0.5)
            if offered is None:
                continue
            task, blob = offered
            if task.kind == "finished":
                return
            self.tasks.append((task.kind, task.round))
            if task.kind == "hello":
                self.link.complete(TrainerReply(round=0, num_samples=100), b"")
            else:
                weights = decode_weights(blob)
                layout = TensorLayout.of(weights)
                local = layout.unflatten(layout.flatten(weights) + np.float32(0.01))
                fit = {"num_samples": 100, "train_loss": 0.5, "steps": 1, "batch_size": 10}
                reply = TrainerReply.model_validate({"round": task.round, "fit": fit if task.kind == "fit" else None})
                self.link.complete(reply, encode_weights(local) if task.kind == "fit" else b"")
            next_round = task.round + 1


@dataclass
class RunningSidecar:
    verdicts: dict[int, PolicyVerdict]
    trainer: Trainer
    received: threading.Event


@contextmanager
def sidecar_against(hub: Hub, silo: str, aggregator_key: VerifyKey | None) -> Iterator[RunningSidecar]:
    """A real sidecar for ``silo`` dialing ``hub`` over mTLS, with the given job key, its trainer in a thread."""
    credentials = hub.ca.issue(silo, server=False)
    identity = SiloIdentity(hub.silos[silo].key, credentials)
    link = TrainerLinkService()
    verdicts: dict[int, PolicyVerdict] = {}
    received = threading.Event()

    def on_verdict(round_number: int, verdict: PolicyVerdict) -> None:
        verdicts[round_number] = verdict
        received.set()

    config = SidecarConfig(
        hub.coordinator.job,
        silo,
        f"localhost:{hub.port}",
        {},
        aggregator_ca_pem=hub.ca.certificate_pem,
        aggregator_key=aggregator_key,
        connect_timeout=30,
    )
    sidecar = Sidecar(config, identity, link, on_verdict=on_verdict)
    trainer = Trainer(link)

    def serve() -> None:
        # The test ends by stopping the hub under the waiting sidecar.
        with contextlib.suppress(grpc.RpcError):
            sidecar.run()

    threads = [threading.Thread(target=trainer.run, daemon=True), threading.Thread(target=serve, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        yield RunningSidecar(verdicts, trainer, received)
    finally:
        trainer.stop.set()


def _wait(condition: threading.Event) -> None:
    assert condition.wait(timeout=60), "the sidecar reported nothing within a minute"


def test_a_model_signed_with_another_key_is_refused_before_the_trainer_sees_it(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a"]) as hub, sidecar_against(hub, "a", SigningKey.generate().public_key) as run:
        _wait(run.received)
        verdict = run.verdicts[1]
        assert not verdict.accepted
        assert verdict.reasons[0].startswith("refused by sidecar: model_signature_invalid")
        assert run.trainer.tasks == [("hello", 0)]


def test_a_model_whose_bytes_are_not_the_signed_ones_is_refused(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a"]) as hub:
        # A hostile or broken hub: it serves other bytes than the model it signed and announced.
        weights = {name: np.ones_like(array) for name, array in decode_weights(hub.coordinator._model_blob).items()}
        hub.coordinator._model_blob = encode_weights(weights)
        with sidecar_against(hub, "a", hub.model_key.public_key) as run:
            _wait(run.received)
            verdict = run.verdicts[1]
            assert not verdict.accepted
            assert verdict.reasons[0].startswith("refused by sidecar: model_digest_mismatch")
            assert run.trainer.tasks == [("hello", 0)]


def _honest_registry(tmp_path: Path) -> tuple[Path, Path]:
    """A two-round job run by an honest hub and sidecar: its registry, and the hub's public key file."""
    with running_hub(tmp_path, ["a"], rounds=2) as hub:
        with sidecar_against(hub, "a", hub.model_key.public_key) as run:
            deadline = time.monotonic() + 120
            while len(hub.coordinator.summaries) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert [run.verdicts[r].accepted for r in (1, 2)] == [True, True]
            assert ("fit", 1) in run.trainer.tasks and ("fit", 2) in run.trainer.tasks
        key_file = tmp_path / "aggregator-key.pub"
        key_file.write_text(hub.model_key.public_key.to_base64())
    return tmp_path / "registry", key_file


def test_an_honest_registry_verifies_and_one_tampered_model_fails_naming_its_round(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry, key = _honest_registry(tmp_path)
    assert fedsilo_main(["models", "verify", "--registry", str(registry), "--key", str(key)]) == 0
    assert "2 models verified" in capsys.readouterr().out

    model = registry / "admission" / "round-00001.safetensors"
    data = bytearray(model.read_bytes())
    data[-1] ^= 1
    model.write_bytes(bytes(data))
    assert fedsilo_main(["models", "verify", "--registry", str(registry), "--key", str(key)]) == 1
    out = capsys.readouterr()
    assert "job admission round 1: model digest (of the file)" in out.err
    assert "round 2" not in out.err and "1 models verified" in out.out


def test_an_edited_lineage_or_another_key_fails_verification(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry, key = _honest_registry(tmp_path)
    record = registry / "admission" / "round-00002.json"
    record.write_text(record.read_text().replace('"strategy": "fedavg"', '"strategy": "fedprox"'))
    assert fedsilo_main(["models", "verify", "--registry", str(registry), "--key", str(key)]) == 1
    assert "job admission round 2: lineage digest" in capsys.readouterr().err

    other = tmp_path / "other.pub"
    other.write_text(SigningKey.generate().public_key.to_base64())
    assert fedsilo_main(["models", "verify", "--registry", str(registry), "--key", str(other)]) == 1
    err = capsys.readouterr().err
    assert "round 1: the seal's signature does not verify" in err


def test_a_bad_key_or_registry_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    assert fedsilo_main(["models", "verify", "--registry", str(tmp_path), "--key", str(bad)]) == 2
    assert "--key" in capsys.readouterr().err
    key = SigningKey.generate().public_key.to_base64()
    assert fedsilo_main(["models", "verify", "--registry", str(tmp_path / "none"), "--key", key]) == 2
    assert "--registry" in capsys.readouterr().err
    # Without --key the hub's state layout is assumed: aggregator-key.pub beside the registry.
    assert fedsilo_main(["models", "verify", "--registry", str(tmp_path / "registry")]) == 2
    assert "aggregator-key.pub" in capsys.readouterr().err


def _plan(claim: GlobalModelClaim, key: SigningKey, round_number: int) -> RoundPlan:
    signed = claim.canonical_bytes()
    return RoundPlan(
        round=round_number, model_digest=claim.model_digest, model_claim=signed, model_signature=key.sign(signed)
    )


@pytest.mark.parametrize(
    ("changes", "round_number", "code"),
    [
        ({}, 1, None),
        ({"job": "another"}, 1, "model_claim_mismatch: the model was signed for job another"),
        # Round 0's model, validly signed, replayed to a later round.
        ({}, 3, "model_claim_mismatch: round 3 must start from round 2's model"),
    ],
)
def test_the_model_check_holds_a_signed_claim_to_its_job_and_round(
    changes: dict[str, str], round_number: int, code: str | None
) -> None:
    key, blob = SigningKey.generate(), b"model bytes"
    claim = GlobalModelClaim.model_validate(
        {
            "job": "admission",
            "round": 0,
            "model_digest": sha256_digest(blob),
            "parent_digest": None,
            "lineage_digest": None,
        }
        | changes
    )
    check = ModelCheck("admission", key.public_key)
    plan = _plan(claim, key, round_number)
    if code is None:
        assert check(plan, blob) == claim
    else:
        with pytest.raises(ModelRefused) as refused:
            check(plan, blob)
        assert refused.value.reason.startswith(code)


def test_a_plan_without_a_seal_is_refused() -> None:
    with pytest.raises(ModelRefused, match=r"^model_unsigned"):
        ModelCheck("admission", SigningKey.generate().public_key)(RoundPlan(round=1, model_digest="sha256:00"), b"")


def test_a_bad_aggregator_key_file_names_the_flag_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"--aggregator-key .*cannot read it"):
        read_aggregator_key(tmp_path / "missing.pub")
    bad = tmp_path / "bad.pub"
    bad.write_text("c2hvcnQ=")
    with pytest.raises(ValueError, match=r"--aggregator-key .*not a base64 Ed25519 public key.*aggregator-key\.pub"):
        read_aggregator_key(bad)
    good = tmp_path / "good.pub"
    key = SigningKey.generate().public_key
    good.write_text(key.to_base64() + "\n")
    assert read_aggregator_key(good) == key
