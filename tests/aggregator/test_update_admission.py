"""Every update is attributed before anything else touches it: a bad signature, a replay,
a stale round, a tampered or oversized payload and an unenrolled silo are each refused
with their own reason, recorded in the audit log; only verified updates are counted."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from fedsilo.identity import SigningKey
from fedsilo.protocol import pb

from .conftest import LENGTH, Hub


def _payload(value: float = 0.1) -> np.ndarray:
    payload = np.full(LENGTH, value * 100, np.float32)
    payload[-1] = 100
    return payload


def test_bad_updates_are_refused_each_with_its_reason(hub: Hub) -> None:
    a, b, c = (hub.silos[n] for n in "abc")
    assert hub.open_round() == 1

    forged = b.submit(b.metadata(_payload()), _payload(), key=SigningKey.generate())
    assert not forged.accepted and forged.reasons[0].startswith("signature_invalid")

    payload = _payload()
    tampered = payload.copy()
    tampered[0] += 1
    altered = c.submit(c.metadata(payload), tampered)
    assert altered.reasons == ("payload_digest_mismatch: the payload differs from what the silo signed",)

    good_metadata = a.metadata(_payload())
    accepted = a.submit(good_metadata, _payload())
    assert accepted.accepted, accepted.reasons

    replay = a.submit(good_metadata, _payload())
    assert not replay.accepted
    assert any(r.startswith("nonce_replayed") for r in replay.reasons)

    summary = hub.first_summary()
    assert summary.accepted == ("a",)
    assert set(summary.denied) == {"b", "c"}

    decisions = [json.loads(line) for line in (hub.workdir / "audit.jsonl").read_text().splitlines()]
    decided = [(d["silo"], d["decision"]) for d in decisions if d["kind"] == "decision"]
    assert decided.count(("a", "allow")) == 1
    assert ("b", "deny") in decided and ("c", "deny") in decided and ("a", "deny") in decided

    def counted(outcome: str) -> float:
        return (
            REGISTRY.get_sample_value("fedsilo_policy_decisions_total", {"job": "admission", "outcome": outcome}) or 0
        )

    assert counted("allow") >= 1 and counted("deny") >= 2


def test_an_update_for_another_round_is_stale(hub: Hub) -> None:
    hub.open_round()
    a = hub.silos["a"]
    verdict = a.submit(a.metadata(_payload(), round=7), _payload())
    assert verdict.reasons[0].startswith("stale_round")


def test_an_oversized_payload_is_refused(hub: Hub) -> None:
    hub.open_round()
    a = hub.silos["a"]
    big = np.zeros(LENGTH + 5, np.float32)
    verdict = a.submit(a.metadata(big, vector_length=LENGTH), big)
    assert verdict.reasons[0].startswith("payload_invalid: update is longer than the model")


def test_a_payload_with_nan_is_refused_in_plain_mode(hub: Hub) -> None:
    hub.open_round()
    a = hub.silos["a"]
    bad = _payload()
    bad[3] = np.nan
    verdict = a.submit(a.metadata(bad), bad)
    assert verdict.reasons[0] == "payload_invalid: update holds NaN or infinite values"


def test_a_silo_that_is_not_enrolled_cannot_even_call(hub: Hub) -> None:
    mallory = hub.client("mallory", SigningKey.generate())
    with pytest.raises(grpc.RpcError) as caught:
        mallory.stub.Join(pb.JoinRequest(job="admission", silo="mallory", num_samples=1))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not an enrolled silo" in caught.value.details()


def test_a_silo_cannot_speak_for_another(hub: Hub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        hub.silos["a"].stub.Join(pb.JoinRequest(job="admission", silo="b", num_samples=1))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
