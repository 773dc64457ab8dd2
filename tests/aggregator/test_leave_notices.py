"""A silo's signed Leave, as the hub takes it (the round closes without the silo) or refuses it.

A real hub (``conftest.running_hub``: coordinator, mTLS gRPC, embedded Rego, audit log) with a
round timeout far longer than the test may take; silos are raw gRPC clients with real
certificates, so they can send what a sidecar never would. A refused leave gets a status that
names the problem and changes nothing: the silo's update is still taken afterwards.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from fedsilo.audit import verify_audit_log
from fedsilo.identity import SigningKey
from fedsilo.protocol import MAX_LEAVE_REASON_LENGTH, LeaveNotice, pb
from fedsilo.runner import ReportingObserver

from .conftest import LENGTH, Hub, RecordedRounds, Silo, running_hub

REASON = "the sidecar was asked to stop"


def _notice(sender: Silo, **changes: Any) -> LeaveNotice:
    fields: dict[str, Any] = {
        "job": "admission",
        "round": 1,
        "silo": sender.name,
        "nonce": secrets.token_hex(16),
        "reason": REASON,
    }
    return LeaveNotice(**(fields | changes))


def _leave(silo: Silo, data: bytes, key: SigningKey | None = None) -> pb.Decision:
    return silo.stub.Leave(pb.SignedMetadata(metadata_json=data, signature=(key or silo.key).sign(data)), timeout=30)


def _refused(silo: Silo, data: bytes, key: SigningKey | None = None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        _leave(silo, data, key)
    return refused.value


def _payload() -> np.ndarray:
    payload = np.zeros(LENGTH, np.float32)
    payload[0], payload[-1] = 1.0, 100.0
    return payload


def _operations(hub: Hub) -> list[dict[str, Any]]:
    lines = (hub.workdir / "audit.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["kind"] == "operation"]


@pytest.fixture
def slow_hub(tmp_path: Path) -> Iterator[Hub]:
    # Each step would wait two minutes for a silo that says nothing.
    with running_hub(tmp_path, ["a", "b", "c"], roundTimeoutSeconds=120) as h:
        yield h


def test_a_leave_closes_the_round_without_the_silo_and_is_audited(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b", "c"], roundTimeoutSeconds=120) as hub:
        a, b, c = (hub.silos[n] for n in "abc")
        assert hub.open_round() == 1
        for silo in (a, b):
            assert silo.submit(silo.metadata(_payload()), _payload()).accepted

        assert _leave(c, _notice(c).canonical_bytes()).accepted

        summary = hub.first_summary()
        assert summary.left == {"c": REASON}
        assert summary.dropped == ("c",) and summary.accepted == ("a", "b")
        (leave,) = [r for r in _operations(hub) if r["operation"] == "leave"]
        assert leave["round"] == 1 and leave["reason"] == REASON
        assert leave["details"] == {"silo": "c", "uploaded": False}
    # What the job's status and RoundCompleted Event are made of, where dropouts are too.
    reports = RecordedRounds()
    observer = ReportingObserver(reports)
    observer.round_finished(summary)
    observer.close(None)
    assert reports.rounds[0].left == {"c": REASON} and reports.rounds[0].dropouts == ("c",)
    # The hub has sealed its log: the leave is in a chain the hub's key vouches for.
    verify_audit_log(tmp_path / "audit.jsonl", hub.model_key.public_key)


def test_a_silo_that_left_and_joins_again_sits_the_round_out_and_takes_the_next(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b", "c"], roundTimeoutSeconds=120, rounds=2) as hub:
        a, b, c = (hub.silos[n] for n in "abc")
        hub.open_round()
        assert _leave(c, _notice(c).canonical_bytes()).accepted
        # Its sidecar restarted: it joins and asks for a round, and learns round 1 goes on without it.
        c.join()
        plan = c.stub.WaitRound(pb.WaitRoundRequest(job="admission", silo="c", after_round=0), timeout=30)
        assert plan.round == 1 and list(plan.participants) == ["a", "b"]
        for silo in (a, b):
            assert silo.submit(silo.metadata(_payload()), _payload()).accepted
        assert hub.first_summary().left == {"c": REASON}

        assert hub.next_round(1) == 2
        assert hub.coordinator.summaries[0].participants == ("a", "b", "c")
        assert hub.coordinator._round is not None and hub.coordinator._round.plan.participants == ("a", "b", "c")


def test_a_silo_stopped_before_the_new_rounds_plan_reached_it_leaves_that_round(slow_hub: Hub) -> None:
    a, b, c = (slow_hub.silos[n] for n in "abc")
    slow_hub.open_round()
    # c's sidecar never saw round 1's plan: it names the round before, and has done nothing in round 1.
    assert _leave(c, _notice(c, round=0).canonical_bytes()).accepted
    for silo in (a, b):
        assert silo.submit(silo.metadata(_payload()), _payload()).accepted
    assert slow_hub.first_summary().left == {"c": REASON}


def test_a_replayed_leave_is_refused(slow_hub: Hub) -> None:
    c = slow_hub.silos["c"]
    slow_hub.open_round()
    signed = _notice(c).canonical_bytes()
    assert _leave(c, signed).accepted

    error = _refused(c, signed)
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and "nonce_replayed" in error.details()
    assert len([r for r in _operations(slow_hub) if r["operation"] == "leave"]) == 1


@pytest.mark.parametrize(
    ("case", "status", "words"),
    [
        ("signed with another key", grpc.StatusCode.PERMISSION_DENIED, "signature_invalid"),
        ("names another silo", grpc.StatusCode.PERMISSION_DENIED, "signed for a, sent by c"),
        ("signed by another silo", grpc.StatusCode.PERMISSION_DENIED, "signature_invalid"),
        ("a later round", grpc.StatusCode.FAILED_PRECONDITION, "the current round is 1"),
        ("an earlier round", grpc.StatusCode.FAILED_PRECONDITION, "the current round is 1"),
        ("another job", grpc.StatusCode.NOT_FOUND, "wrong_job"),
        ("an oversized reason", grpc.StatusCode.INVALID_ARGUMENT, "reason"),
        ("a reason of two lines", grpc.StatusCode.INVALID_ARGUMENT, "reason"),
        ("not a leave notice", grpc.StatusCode.INVALID_ARGUMENT, "metadata_invalid"),
    ],
)
def test_a_leave_that_is_not_the_silos_own_for_this_round_is_refused_and_changes_nothing(
    slow_hub: Hub, case: str, status: grpc.StatusCode, words: str
) -> None:
    a, c = slow_hub.silos["a"], slow_hub.silos["c"]
    slow_hub.open_round()
    key = None
    if case == "signed with another key":
        data = _notice(c).canonical_bytes()
        key = SigningKey.generate()
    elif case == "names another silo":
        data = _notice(c, silo="a").canonical_bytes()
    elif case == "signed by another silo":
        # a's notice, signed with a's key, sent over c's session: it verifies with no key c holds.
        data = _notice(a).canonical_bytes()
        key = a.key
    elif case == "a later round":
        data = _notice(c, round=2).canonical_bytes()
    elif case == "an earlier round":
        # c has taken part in round 1 (it has its model): a leave of round 0 is not a late view of it.
        list(c.stub.GetModel(pb.RoundRef(job="admission", round=1, silo="c"), timeout=30))
        data = _notice(c, round=0).canonical_bytes()
    elif case == "another job":
        data = _notice(c, job="other").canonical_bytes()
    elif case == "an oversized reason":
        data = _notice(c).canonical_bytes().replace(REASON.encode(), b"x" * (MAX_LEAVE_REASON_LENGTH + 1))
    elif case == "a reason of two lines":
        data = _notice(c).canonical_bytes().replace(REASON.encode(), b"stopped\\nround 1: a left")
    else:
        data = b'{"job":"admission","round":1}'

    error = _refused(c, data, key)
    assert error.code() == status and words in error.details(), (error.code(), error.details())
    # Nothing changed: c is still expected, and its update still counts.
    assert not [r for r in _operations(slow_hub) if r["operation"] == "leave"]
    for silo in slow_hub.silos.values():
        assert silo.submit(silo.metadata(_payload()), _payload()).accepted
    summary = slow_hub.first_summary()
    assert summary.left == {} and summary.accepted == ("a", "b", "c")


def test_a_leave_after_the_job_ended_is_refused(slow_hub: Hub) -> None:
    c = slow_hub.silos["c"]
    slow_hub.open_round()
    slow_hub.coordinator.abort("ended by the test")
    slow_hub.thread.join(timeout=30)

    error = _refused(c, _notice(c).canonical_bytes())
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "the job has ended" in error.details()
    assert not [r for r in _operations(slow_hub) if r["operation"] == "leave"]
