"""A hostile partner holding one enrolled silo's credentials, and its own CA, against a real hub.

Each test plays what a partner could send with fedsilo's own stubs over mutual TLS: a
certificate its CA minted for another silo, evaluation reports and Join counts built to
overflow or cancel the hub's arithmetic, stalled upload streams, repeated and malformed
updates, and a silo whose trainer died. The hub must refuse each with a reason it
records, never crash, stall or let one silo decide for the others.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from fedsilo.audit import SignedHead
from fedsilo.identity import SigningKey, sha256_digest
from fedsilo.policy import Decision, EmbeddedRegoEngine, PolicyGate, Refusal, UpdatePolicyInput, replay_audit_log
from fedsilo.protocol import canonical_json, encode_weights, pb, plan_from_proto, update_stream, verdict_from_proto

from .conftest import LENGTH, WEIGHTS, Hub, Silo, running_hub


def _payload(value: float = 0.1, weight: float = 100) -> np.ndarray:
    payload = np.full(LENGTH, value * weight, np.float32)
    payload[-1] = weight
    return payload


def _report(silo: Silo, **changes: Any) -> tuple[str, ...]:
    """Send a signed evaluation report for round 1 with ``changes``; the reasons (empty when accepted)."""
    document = {
        "job": "admission",
        "round": 1,
        "silo": silo.name,
        "nonce": secrets.token_hex(16),
        "loss": 0.5,
        "accuracy": 0.75,
        "num_samples": 100,
    } | changes
    data = canonical_json(document)
    verdict = verdict_from_proto(
        silo.stub.ReportEvaluation(pb.SignedMetadata(metadata_json=data, signature=silo.key.sign(data)))
    )
    return () if verdict.accepted else verdict.reasons


def test_a_partner_ca_cannot_mint_a_certificate_for_another_silo(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b", "c"], own_cas=True) as hub:
        # Partner a keeps its CA key and mints a certificate named "b".
        impostor = hub.client("b", SigningKey.generate(), issuer=hub.silo_cas["a"])
        with pytest.raises(grpc.RpcError) as caught:
            impostor.stub.Join(pb.JoinRequest(job="admission", silo="b", num_samples=1))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "another CA minted it" in caught.value.details()
        impostor.channel.close()
        # The genuine silos, each with a certificate from its own CA, take part as before.
        assert hub.open_round() == 1
        for silo in hub.silos.values():
            assert silo.submit(silo.metadata(_payload()), _payload()).accepted
        assert hub.first_summary().accepted == ("a", "b", "c")


def test_evaluation_reports_that_would_break_the_metrics_are_refused_and_the_job_goes_on(hub: Hub) -> None:
    a, b, c = (hub.silos[n] for n in "abc")
    hub.open_round()
    assert _report(a, num_samples=10**400)[0].startswith("metadata_invalid")
    assert _report(a, num_samples=-200)[0].startswith("metadata_invalid: EvaluationReport: num_samples")
    assert _report(b, accuracy=123.0)[0].startswith("metadata_invalid: EvaluationReport: accuracy")
    assert _report(c, loss=-7.0)[0].startswith("metadata_invalid: EvaluationReport: loss")
    assert _report(a) == ()
    for silo in (a, b, c):
        assert silo.submit(silo.metadata(_payload()), _payload()).accepted
    summary = hub.first_summary()
    assert summary.accepted == ("a", "b", "c")
    assert "error" not in hub.outcome


def test_join_counts_that_would_decide_the_fixed_point_precision_are_refused(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b", "c"], aggregation={"mode": "masked"}, policy={"normCap": 5.0}) as hub:
        a = hub.silos["a"]
        for records in (2**40, 2**27):
            with pytest.raises(grpc.RpcError) as caught:
                a.stub.Join(pb.JoinRequest(job="admission", silo="a", num_samples=records))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "num_samples must be between 1 and" in caught.value.details()
        assert hub.coordinator.job.spec.aggregation.mode.value == "masked"


def _stalled(silo: Silo, release: threading.Event) -> Any:
    """An update stream that sends its signed metadata, then nothing until ``release``."""
    data = silo.metadata(_payload()).canonical_bytes()
    messages = update_stream(data, silo.key.sign(data), [(0, _payload())], "float32")
    yield next(messages)
    release.wait(60)


def test_a_silo_stalling_two_uploads_holds_no_other_silos_slot(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b", "c"], roundTimeoutSeconds=30) as hub:
        a, b, c = (hub.silos[n] for n in "abc")
        hub.open_round()
        release = threading.Event()
        streams = [a.stub.SubmitUpdate.future(_stalled(a, release)) for _ in range(2)]
        try:
            assert b.submit(b.metadata(_payload()), _payload()).accepted
            assert c.submit(c.metadata(_payload()), _payload()).accepted
            summary = hub.first_summary()
        finally:
            release.set()
            for stream in streams:
                stream.cancel()
        assert summary.accepted == ("b", "c")
        assert summary.denied["a"][0].startswith("upload_busy: a is already uploading an update")


def test_a_stalled_upload_is_cut_off_at_its_deadline(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b"], roundTimeoutSeconds=6) as hub:
        a, b = hub.silos["a"], hub.silos["b"]
        hub.open_round()
        release = threading.Event()
        stream = a.stub.SubmitUpdate.future(_stalled(a, release))
        try:
            assert b.submit(b.metadata(_payload()), _payload()).accepted
            summary = hub.first_summary()
        finally:
            release.set()
            stream.cancel()
        assert summary.accepted == ("b",)
        assert summary.denied["a"] == ("payload_invalid: the upload did not finish within its deadline of 3s",)


def test_the_audit_log_records_what_took_effect_and_refusals_before_the_policy(hub: Hub) -> None:
    a, b = hub.silos["a"], hub.silos["b"]
    hub.open_round()
    assert a.submit(a.metadata(_payload()), _payload()).accepted
    again = a.submit(a.metadata(_payload()), _payload())
    assert again.reasons[0].startswith("round_closed: a already sent its input message")
    # A nonce of megabytes: refused as it parses, recorded, and the record stays small.
    huge = b.metadata(_payload()).model_dump() | {"nonce": "f" * (3 << 20)}
    data = canonical_json(huge)
    verdict = verdict_from_proto(
        b.stub.SubmitUpdate(update_stream(data, b.key.sign(data), [(0, _payload())], "float32"))
    )
    assert verdict.reasons[0].startswith("metadata_invalid")
    records = hub.records()
    assert [(r["silo"], r["decision"]) for r in records] == [("a", "allow"), ("a", "deny"), ("b", "deny")]
    assert records[1]["reasons"][0].startswith("round_closed")
    assert records[2]["engine"] == "hub" and records[2]["input"]["reason"] == "metadata_invalid"
    assert max(len(line) for line in (hub.workdir / "audit.jsonl").read_text().splitlines()) < 8192
    report = replay_audit_log(hub.workdir / "audit.jsonl", EmbeddedRegoEngine())
    assert report.consistent and report.replayed == 2 and report.without_engine == 1


class _SlowGate:
    """The real gate, but silo a's decision takes until round 1's input step has closed."""

    def __init__(self, gate: PolicyGate) -> None:
        self.gate = gate
        self.closed = threading.Event()

    def decide(self, policy_input: UpdatePolicyInput) -> Decision:
        if policy_input.silo.name == "a":
            self.closed.wait(60)
        return self.gate.decide(policy_input)

    def record(self, policy_input: UpdatePolicyInput, decision: Decision) -> None:
        self.gate.record(policy_input, decision)

    def refuse(self, *, job: str, round_number: int, silo: str, refusal: Refusal) -> Decision:
        return self.gate.refuse(job=job, round_number=round_number, silo=silo, refusal=refusal)

    def checkpoint(self) -> SignedHead:
        return self.gate.checkpoint()


def test_an_update_allowed_after_its_step_closed_is_one_refused_record(tmp_path: Path) -> None:
    slow: list[_SlowGate] = []

    def wrap(gate: PolicyGate) -> _SlowGate:
        slow.append(_SlowGate(gate))
        return slow[0]

    with running_hub(tmp_path, ["a", "b"], gate_wrapper=wrap, roundTimeoutSeconds=5) as hub:
        a, b = hub.silos["a"], hub.silos["b"]
        hub.open_round()
        late = a.stub.SubmitUpdate.future(update_stream(*_signed(a, _payload()), [(0, _payload())], "float32"))
        assert b.submit(b.metadata(_payload()), _payload()).accepted
        summary = hub.first_summary()
        slow[0].closed.set()
        verdict = verdict_from_proto(late.result(timeout=60))
    assert summary.accepted == ("b",)
    assert verdict.reasons[0].startswith("round_closed: the input step of this round has closed")
    assert [(r["silo"], r["decision"]) for r in hub.records()] == [("b", "allow"), ("a", "deny")]
    assert replay_audit_log(hub.workdir / "audit.jsonl", EmbeddedRegoEngine()).consistent


def _signed(silo: Silo, payload: np.ndarray) -> tuple[bytes, bytes]:
    data = silo.metadata(payload).canonical_bytes()
    return data, silo.key.sign(data)


def test_a_silo_that_dropped_stays_out_until_it_joins_again(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b", "c"], rounds=3, roundTimeoutSeconds=5) as hub:
        a, b, c = (hub.silos[n] for n in "abc")
        hub.open_round()
        # a's trainer died: it sends nothing in round 1 and is dropped at the deadline...
        for silo in (b, c):
            assert silo.submit(silo.metadata(_payload()), _payload()).accepted
        assert hub.first_summary().dropped == ("a",)

        def wait(silo: Silo, after: int = 1) -> Any:
            return silo.stub.WaitRound.future(pb.WaitRoundRequest(job="admission", silo=silo.name, after_round=after))

        # ...but its sidecar keeps asking for rounds: that alone does not bring it back.
        a_waits = wait(a)
        plans = [plan_from_proto(w.result(timeout=60)) for w in (wait(b), wait(c))]
        assert {p.round for p in plans} == {2}
        assert plans[0].participants == ("b", "c")
        a_waits.cancel()
        for silo in (b, c):
            assert silo.submit(silo.metadata(_payload(), round=2), _payload()).accepted
        # A Join (its sidecar's trainer greeted it again) does.
        a.join()
        plans = [plan_from_proto(w.result(timeout=60)) for w in (wait(a, 2), wait(b, 2), wait(c, 2))]
        assert {(p.round, p.participants) for p in plans} == {(3, ("a", "b", "c"))}


def test_plain_mode_denies_claims_the_payload_contradicts_and_the_model_does_not_move(hub: Hub) -> None:
    a, b, c = (hub.silos[n] for n in "abc")
    hub.open_round()
    # Norm 387 (every coordinate 100) while claiming 1.0.
    loud = _payload(100.0)
    lie = a.submit(a.metadata(loud, l2_norm=1.0), loud)
    assert lie.reasons == ("claim_mismatch: the payload's L2 norm is 387.298, the update claims 1",)
    # A weight coordinate of 10^6 while claiming 100 records.
    heavy = _payload(0.0, weight=1e6)
    heavier = b.submit(b.metadata(heavy, num_samples=100), heavy)
    assert heavier.reasons == ("claim_mismatch: the payload's weight is 1e+06, the update claims 100 records",)
    still = _payload(0.0)
    assert c.submit(c.metadata(still), still).accepted
    summary = hub.first_summary()
    assert summary.accepted == ("c",)
    assert {s: r[0].split(":")[0] for s, r in summary.denied.items()} == {"a": "claim_mismatch", "b": "claim_mismatch"}
    # c's update is zero: with both lies denied, the global model is round 0's.
    assert summary.model_digest == sha256_digest(encode_weights(WEIGHTS))


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"num_samples": "9" * 5000}, "integer of 5000 digits"),
        ({"mechanism": {"kind": ["gaussian"], "noise_multiplier": 1.0, "count": 1}}, "mechanism"),
        (
            {"mechanism": {"kind": "gaussian", "noise_multiplier": 1e300, "count": 1}},
            "mechanism.gaussian.noise_multiplier",
        ),
        ({"mechanism": {"kind": "gaussian", "nested": _nested(40)}}, "nested deeper"),
    ],
)
def test_signed_metadata_that_cannot_be_read_is_a_recorded_refusal_not_an_error(
    hub: Hub, change: dict[str, Any], field: str
) -> None:
    a = hub.silos["a"]
    hub.open_round()
    document = a.metadata(_payload()).model_dump() | change
    # A 5000-digit number is written into the bytes by hand: Python's own json will not print it.
    data = canonical_json(document).replace(b'"' + b"9" * 5000 + b'"', b"9" * 5000)
    verdict = verdict_from_proto(
        a.stub.SubmitUpdate(update_stream(data, a.key.sign(data), [(0, _payload())], "float32"))
    )
    assert verdict.reasons[0].startswith("metadata_invalid") and field in verdict.reasons[0], verdict.reasons
    assert [(r["silo"], r["decision"], r["engine"]) for r in hub.records()] == [("a", "deny", "hub")]
