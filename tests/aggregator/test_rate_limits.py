"""A flooding silo gets RESOURCE_EXHAUSTED and a few audit records; honest silos finish the round beside it."""

from __future__ import annotations

import threading
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from fedsilo.aggregator._limits import RateLimited, RateLimits
from fedsilo.api import RateLimitSpec
from fedsilo.policy import Reason, Refusal
from fedsilo.protocol import pb

from .conftest import Silo, running_hub
from .test_hostile_partner import _payload, _stalled

#: Bounded: the flood stops by itself even if the assertions below fail.
FLOOD_CALLS = 600


def _flood(silo: Silo, calls: int) -> dict[grpc.StatusCode, int]:
    """``calls`` cheap calls as fast as the channel takes them, from 8 threads; the status codes seen."""
    seen: dict[grpc.StatusCode, int] = {}
    lock = threading.Lock()

    def one(_: int) -> None:
        try:
            silo.stub.Join(pb.JoinRequest(job="admission", silo=silo.name, num_samples=100), timeout=30)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                assert "spec.rateLimits" in error.details()
        with lock:
            seen[code] = seen.get(code, 0) + 1

    with futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(calls)))
    return seen


def test_a_flooding_silo_is_refused_and_the_honest_silos_finish_their_round(tmp_path: Path) -> None:
    limits = {"callsPerSecond": 20.0, "burst": 20, "auditWindowSeconds": 3600}
    with running_hub(tmp_path, ["a", "b", "c"], minSilos=2, rateLimits=limits) as hub:
        a, b, c = (hub.silos[n] for n in "abc")
        hub.open_round()
        flood = futures.ThreadPoolExecutor(1).submit(_flood, a, FLOOD_CALLS)
        # The honest silos send while a floods.
        assert b.submit(b.metadata(_payload()), _payload()).accepted
        assert c.submit(c.metadata(_payload()), _payload()).accepted
        seen = flood.result(timeout=300)
        assert seen.get(grpc.StatusCode.RESOURCE_EXHAUSTED, 0) > FLOOD_CALLS // 2
        assert sum(seen.values()) == FLOOD_CALLS
        # a's bucket refills at 20 calls a second: after the flood it may send its own update.
        threading.Event().wait(0.2)
        assert a.submit(a.metadata(_payload()), _payload()).accepted
        assert sorted(hub.first_summary().accepted) == ["a", "b", "c"]
    limited = [r for r in hub.records() if r["reasons"] and r["reasons"][0].startswith("rate_limited")]
    # One record for the whole flood (one audit window), naming the limit; none for b or c.
    assert [r["silo"] for r in limited] == ["a"]
    # Eight threads meet the calls-in-flight limit or the rate first, whichever: the record names it.
    assert limited[0]["reasons"][0].startswith("rate_limited: a ")
    assert "(spec.rateLimits." in limited[0]["reasons"][0]
    assert limited[0]["engine"] == "hub"


def test_a_third_concurrent_upload_is_refused_at_the_edge_and_the_second_by_admission(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b"], roundTimeoutSeconds=30) as hub:
        a, b = hub.silos["a"], hub.silos["b"]
        hub.open_round()
        release = threading.Event()
        stalled = [a.stub.SubmitUpdate.future(_stalled(a, release)) for _ in range(2)]
        try:
            # The default allows two uploads in flight: a third never reaches the admission steps.
            with pytest.raises(grpc.RpcError) as third:
                a.submit(a.metadata(_payload()), _payload())
            assert third.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "spec.rateLimits.concurrentUploads" in third.value.details()
            assert b.submit(b.metadata(_payload()), _payload()).accepted
        finally:
            release.set()
            for stream in stalled:
                stream.cancel()


# ----- the limiter's own rules, on a clock the test moves ----------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _limits(**spec: object) -> tuple[RateLimits, _Clock, list[tuple[str, Refusal]]]:
    clock, recorded = _Clock(), []
    limits = RateLimits(RateLimitSpec.model_validate(spec), ["a", "b"], lambda s, r: recorded.append((s, r)), clock)
    return limits, clock, recorded


def test_the_bucket_refills_at_the_configured_rate() -> None:
    limits, clock, _ = _limits(callsPerSecond=2.0, burst=2, concurrentCalls=64, concurrentUploads=1)
    for _ in range(2):
        limits.enter("a")
        limits.leave("a")
    with pytest.raises(RateLimited, match="2 calls per second"):
        limits.enter("a")
    clock.now += 0.5  # one token back
    limits.enter("a")
    # Another silo's budget is its own.
    limits.enter("b")


def test_calls_and_uploads_in_flight_are_limited_and_given_back() -> None:
    limits, _, _ = _limits(concurrentCalls=3, concurrentUploads=1)
    limits.enter("a", upload=True)
    with pytest.raises(RateLimited, match="1 uploads in flight"):
        limits.enter("a", upload=True)
    limits.enter("a")
    limits.enter("a")
    with pytest.raises(RateLimited, match="3 calls in flight"):
        limits.enter("a")
    limits.leave("a", upload=True)
    limits.enter("a", upload=True)


def test_one_audit_record_per_window_with_the_count_of_refusals_since_the_last() -> None:
    limits, clock, recorded = _limits(callsPerSecond=1.0, burst=1, auditWindowSeconds=10)
    limits.enter("a")
    for _ in range(5):
        with pytest.raises(RateLimited):
            limits.enter("a")
    assert len(recorded) == 1
    assert recorded[0][1].reason is Reason.RATE_LIMITED
    assert "the first refusal" in recorded[0][1].explanation
    clock.now += 10.5  # a new window; the bucket holds one call again, then refuses
    limits.enter("a")
    with pytest.raises(RateLimited):
        limits.enter("a")
    assert len(recorded) == 2
    assert "4 more refused since the previous record" in recorded[1][1].explanation
