"""An update's way out is an ordered list of steps: each does one thing, a refusal stops the
way before anything is signed or sent, and the privacy steps charge the silo's ledger for
the exact payload the hub will see."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fedsilo.api import FederatedJobSpec
from fedsilo.identity import SigningKey, sha256_digest
from fedsilo.privacy import plan_for_silo
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.protocol import RoundPlan, TensorLayout
from fedsilo.sidecar._pipeline import OutgoingUpdate, Step, run_steps
from fedsilo.sidecar._privacy import PrivacyGuard
from fedsilo.sidecar._sending import Sign
from fedsilo.sidecar._update import Clip, check_weights, plain_encode
from fedsilo_testing.sidecar_updates import Wire, outgoing_update, silo_dp_steps

from ..datasets.conftest import job_spec

GLOBAL = {"w": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.float32)}
LAYOUT = TensorLayout.of(GLOBAL)
PLAN = RoundPlan(round=1, vector_length=LAYOUT.size, model_digest="sha256:model")


def _update(local: dict[str, np.ndarray], records: int = 40) -> OutgoingUpdate:
    return outgoing_update(PLAN, GLOBAL, local, records)


def _plain_steps(key: SigningKey, wire: Wire, *middle: Step) -> list[Step]:
    return [check_weights, Clip(norm_cap=1.0, clip_range=4.0), *middle, plain_encode, Sign("job", "a", key), wire]


def test_a_plain_update_is_checked_clipped_weighted_signed_and_sent_in_that_order() -> None:
    key, wire = SigningKey.generate(), Wire()
    local = {"w": np.full((2, 3), 3.0, np.float32), "b": np.zeros(3, np.float32)}
    verdict = run_steps(_plain_steps(key, wire), _update(local))
    assert verdict.accepted
    (sent,) = wire.sent
    key.public_key.verify(sent.signature, sent.signed_metadata)
    claims = json.loads(sent.signed_metadata)
    assert claims["l2_norm"] == pytest.approx(1.0, rel=1e-5) and claims["num_samples"] == 40
    assert sent.payload is not None and sent.payload.dtype == "float32"
    payload = np.concatenate([chunk for _, chunk in sent.payload.chunks()])
    assert claims["payload_digest"] == sent.payload.digest == sha256_digest(payload.tobytes())
    assert payload[-1] == 40 and float(np.linalg.norm(payload[:-1] / 40)) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize(
    ("local", "reason"),
    [
        ({"w": np.full((2, 3), np.nan, np.float32), "b": np.zeros(3, np.float32)}, "non_finite"),
        ({"w": np.zeros((3, 2), np.float32), "b": np.zeros(3, np.float32)}, "shape_mismatch"),
    ],
)
def test_a_broken_trainer_model_is_refused_before_anything_is_signed_or_sent(
    local: dict[str, np.ndarray], reason: str
) -> None:
    wire = Wire()
    verdict = run_steps(_plain_steps(SigningKey.generate(), wire), _update(local))
    assert not verdict.accepted and verdict.reasons[0].startswith(f"rejected by sidecar: {reason}")
    assert wire.sent == []


def test_bytes_that_are_no_model_are_refused_as_an_invalid_payload() -> None:
    update = _update(GLOBAL)
    update.model_bytes = b"not safetensors"
    verdict = run_steps(_plain_steps(SigningKey.generate(), Wire()), update)
    assert verdict.reasons[0].startswith("rejected by sidecar: payload_invalid")


def _silo_dp_spec() -> FederatedJobSpec:
    document = job_spec().model_dump(by_alias=True)
    document["privacy"] = {"delta": 1e-5, "mode": "silo", "noiseMultiplier": 2.0}
    return FederatedJobSpec.model_validate(document)


def _guard(path: Path, silo_ceiling: float | None = None) -> PrivacyGuard:
    plan = plan_for_silo(_silo_dp_spec(), 400)
    assert plan is not None
    return PrivacyGuard(plan, PrivacyLedger(path), "a", "job/run-1", job_ceiling=None, silo_ceiling=silo_ceiling)


def test_silo_privacy_charges_the_exact_payload_sent_and_acknowledges_an_accepted_one(tmp_path: Path) -> None:
    guard, wire = _guard(tmp_path / "silo.sqlite"), Wire()
    steps = silo_dp_steps(guard, wire)
    local = {"w": np.full((2, 3), 0.1, np.float32), "b": np.zeros(3, np.float32)}
    assert run_steps(steps, _update(local, records=400)).accepted
    (sent,) = wire.sent
    claims = json.loads(sent.signed_metadata)
    assert claims["num_samples"] == 400 and claims["mechanism"] is not None and claims["epsilon_round"] > 0
    assert sent.weight == 1, "silo-level DP weighs every silo's update 1"
    with PrivacyLedger(tmp_path / "silo.sqlite") as ledger:
        (charge,) = ledger.history()
    assert charge.idempotency_key.endswith(claims["payload_digest"])
    assert charge.acknowledged_at is not None


def test_a_round_over_the_ceiling_is_withheld_uncharged_and_unsent(tmp_path: Path) -> None:
    guard, wire = _guard(tmp_path / "silo.sqlite", silo_ceiling=1e-6), Wire()
    steps = silo_dp_steps(guard, wire)
    verdict = run_steps(steps, _update(GLOBAL, records=400))
    assert not verdict.accepted and verdict.reasons[0].startswith("withheld by sidecar: silo_epsilon_exceeded")
    assert wire.sent == []
    with PrivacyLedger(tmp_path / "silo.sqlite") as ledger:
        assert ledger.history() == ()


def test_a_denied_release_stays_charged_but_unacknowledged(tmp_path: Path) -> None:
    steps = silo_dp_steps(_guard(tmp_path / "silo.sqlite"), Wire(accept=False))
    assert not run_steps(steps, _update(GLOBAL, records=400)).accepted
    with PrivacyLedger(tmp_path / "silo.sqlite") as ledger:
        (charge,) = ledger.history()
    assert charge.acknowledged_at is None
