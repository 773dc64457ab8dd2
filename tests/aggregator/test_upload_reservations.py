"""A silo reserves its upload slot first (``ReserveUpload``), so it sends nothing while others upload.

The hub is the real one (coordinator, admission, mTLS server); two silos hold both upload slots
with uploads that send their signed metadata and stall, as a slow or hostile partner can.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import grpc
import numpy as np
import pytest

from fedsilo.aggregator._service import AggregatorService
from fedsilo.protocol import RoundPlan, pb, rpc
from fedsilo.sidecar._pipeline import OutgoingUpdate, Payload
from fedsilo.sidecar._sending import Send

from .conftest import Hub, Silo, running_hub
from .test_hostile_partner import _payload, _stalled


def _reserve(caller: Silo, **ref: Any) -> Any:
    """``caller``'s reservation for round 1 of the job, the reference's fields changed by ``ref``."""
    return caller.stub.ReserveUpload.future(
        pb.RoundRef(**({"job": "admission", "round": 1, "silo": caller.name} | ref))
    )


def _wait_until_uploading(hub: Hub, *silos: str) -> None:
    """Until the hub reads the uploads of ``silos`` (they hold their slots); read from its slots' state."""
    deadline = time.monotonic() + 30
    while not set(silos) <= hub.coordinator.admission._uploads._uploading:
        assert time.monotonic() < deadline, f"the hub never started reading the uploads of {silos}"
        time.sleep(0.05)


def _outgoing(silo: Silo, taken: list[int]) -> OutgoingUpdate:
    """``silo``'s signed round-1 update as the send step gets it; ``taken`` grows when its payload is read."""
    payload = _payload()

    def chunks() -> Iterator[tuple[int, np.ndarray]]:
        taken.append(0)
        yield 0, payload

    update = OutgoingUpdate(cast(RoundPlan, RoundPlan(round=1)), cast(Any, None), cast(Any, None), b"", {}, 100, 100)
    update.payload = Payload("float32", chunks, "")
    signed = silo.metadata(payload).canonical_bytes()
    update.signed_metadata, update.signature = signed, silo.key.sign(signed)
    return update


def test_a_silo_waiting_for_its_reserved_slot_has_sent_none_of_its_payload(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b", "c"], roundTimeoutSeconds=60) as hub:
        a, b, c = (hub.silos[n] for n in "abc")
        hub.open_round()
        release = threading.Event()
        stalled = [silo.stub.SubmitUpdate.future(_stalled(silo, release)) for silo in (a, b)]
        _wait_until_uploading(hub, "a", "b")
        taken: list[int] = []
        update = _outgoing(c, taken)
        verdicts: list[Any] = []
        sender = threading.Thread(
            target=lambda: verdicts.append(Send(c.stub, "admission", "c", 60)(update, cast(Any, None)))
        )
        try:
            sender.start()
            sender.join(2)
            assert sender.is_alive() and taken == [], "c's payload went out while both slots were taken"
            stalled[0].cancel()  # a's upload ends: its slot goes to c's reservation
            sender.join(30)
            assert verdicts and verdicts[0].accepted, verdicts
            assert taken == [0]
        finally:
            release.set()
            for stream in stalled:
                stream.cancel()


def test_a_reserved_slot_is_kept_for_its_silo(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b", "c"], roundTimeoutSeconds=60) as hub:
        a, b, c = (hub.silos[n] for n in "abc")
        hub.open_round()
        release = threading.Event()
        assert _reserve(a).result(timeout=10).hold_seconds > 0
        assert _reserve(b).result(timeout=10).hold_seconds > 0
        waiting = _reserve(c)  # both slots are kept for a and b
        try:
            with pytest.raises(grpc.FutureTimeoutError):
                waiting.result(timeout=1)
            assert a.submit(a.metadata(_payload()), _payload()).accepted  # a's slot, at once
            assert waiting.result(timeout=10).hold_seconds > 0  # then free for c
            assert c.submit(c.metadata(_payload()), _payload()).accepted
        finally:
            release.set()


@pytest.mark.parametrize(
    ("ref", "code", "words"),
    [
        ({"silo": "b"}, grpc.StatusCode.PERMISSION_DENIED, "certificate is for a, request names b"),
        ({"job": "other"}, grpc.StatusCode.NOT_FOUND, "serves job 'admission', not 'other'"),
        ({"round": 2}, grpc.StatusCode.FAILED_PRECONDITION, "round 2 is not open"),
    ],
    ids=["another silo's name", "another job", "another round"],
)
def test_a_reservation_that_names_the_wrong_silo_job_or_round_is_refused(
    tmp_path: Path, ref: dict[str, Any], code: grpc.StatusCode, words: str
) -> None:
    with running_hub(tmp_path, ["a", "b"]) as hub:
        hub.open_round()
        with pytest.raises(grpc.RpcError) as caught:
            _reserve(hub.silos["a"], **ref).result(timeout=10)
        assert caught.value.code() == code
        assert words in caught.value.details()


def test_a_silo_that_has_sent_its_update_cannot_reserve_again(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b"]) as hub:
        a = hub.silos["a"]
        hub.open_round()
        assert a.submit(a.metadata(_payload()), _payload()).accepted
        with pytest.raises(grpc.RpcError) as caught:
            _reserve(a).result(timeout=10)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "a already sent its" in caught.value.details()


def test_no_slot_freed_before_the_rounds_deadline_is_refused_as_busy(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b", "c"], roundTimeoutSeconds=5) as hub:
        a, b, c = (hub.silos[n] for n in "abc")
        hub.open_round()
        _reserve(a).result(timeout=10)
        _reserve(b).result(timeout=10)
        with pytest.raises(grpc.RpcError) as caught:
            _reserve(c).result(timeout=30)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert caught.value.details().startswith("upload_busy: no upload slot freed before the round's deadline")


def test_a_reservation_given_up_by_its_silo_frees_the_slot(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b", "c", "d"], roundTimeoutSeconds=60) as hub:
        a, b, c, d = (hub.silos[n] for n in "abcd")
        hub.open_round()
        _reserve(a).result(timeout=10)
        release = threading.Event()
        stalled = b.stub.SubmitUpdate.future(_stalled(b, release))
        _wait_until_uploading(hub, "b")
        gave_up = _reserve(c)
        with pytest.raises(grpc.FutureTimeoutError):
            gave_up.result(timeout=1)
        gave_up.cancel()
        try:
            # b's slot frees and reaches c's abandoned call, which must not keep it for the
            # reservation's 15 s: d gets it well before then.
            stalled.cancel()
            assert _reserve(d).result(timeout=8).hold_seconds > 0
        finally:
            release.set()


def test_a_sidecar_facing_a_hub_without_reservations_uploads_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hub from before reservations answers UNIMPLEMENTED, as the generated servicer does: no
    # such build is at hand, so this hub's handler is put back to the generated one.
    monkeypatch.setattr(AggregatorService, "ReserveUpload", rpc.AggregatorServicer.ReserveUpload)
    with running_hub(tmp_path, ["a", "b"]) as hub:
        a = hub.silos["a"]
        hub.open_round()
        taken: list[int] = []
        assert Send(a.stub, "admission", "a", 60)(_outgoing(a, taken), cast(Any, None)).accepted
        assert taken == [0]
