"""Per-silo rate limits at the gRPC edge: calls per second, calls in flight, uploads in flight.

``AggregatorService`` asks ``RateLimits.enter`` once per call, right after it has verified
who is calling (certificate, enrolment, the silo's own CA), so a partner can only ever spend
its own silo's budget. A call beyond the job's ``spec.rateLimits`` is refused with
``RESOURCE_EXHAUSTED`` before it touches any round state; the service releases the call's
place when the RPC ends (``leave``), however it ends.

A flood must not flood the audit log either: the first refusal of a silo in each audit
window is recorded (``fedsilo.policy.Reason.RATE_LIMITED``, through ``on_limited``), and
the record carries how many calls were refused since the silo's previous record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fedsilo.api import RateLimitSpec
from fedsilo.policy import Reason, Refusal


class RateLimited(Exception):
    """A call beyond the silo's limits; the message says which limit, and the field that sets it."""


@dataclass
class _Silo:
    """One silo's bucket, calls in flight and audit window."""

    tokens: float
    refilled: float
    calls: int = 0
    uploads: int = 0
    recorded_at: float | None = None
    refused_since_record: int = 0


class RateLimits:
    """The limits of one job, for its enrolled silos."""

    def __init__(
        self,
        spec: RateLimitSpec,
        silos: tuple[str, ...] | list[str],
        on_limited: Callable[[str, Refusal], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self._on_limited = on_limited
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        # Only enrolled silos have state: names are checked before ``enter``, so memory is bounded.
        self._silos = {silo: _Silo(tokens=float(spec.burst), refilled=now) for silo in silos}

    def enter(self, silo: str, *, upload: bool = False) -> None:
        """Take a place for one call of ``silo`` (an upload when ``upload``); raise ``RateLimited`` beyond a limit."""
        spec = self.spec
        with self._lock:
            state = self._silos[silo]
            now = self._clock()
            state.tokens = min(float(spec.burst), state.tokens + (now - state.refilled) * spec.calls_per_second)
            state.refilled = now
            problem = None
            if state.tokens < 1.0:
                problem = (
                    f"{silo} called faster than the job's limit of {spec.calls_per_second:g} calls per second "
                    f"(burst {spec.burst}; spec.rateLimits.callsPerSecond and .burst); slow down"
                )
            elif state.calls >= spec.concurrent_calls:
                problem = (
                    f"{silo} already has {state.calls} calls in flight, the job's limit "
                    "(spec.rateLimits.concurrentCalls); wait for one to finish"
                )
            elif upload and state.uploads >= spec.concurrent_uploads:
                problem = (
                    f"{silo} already has {state.uploads} uploads in flight, the job's limit "
                    "(spec.rateLimits.concurrentUploads); wait for one to finish"
                )
            if problem is None:
                state.tokens -= 1.0
                state.calls += 1
                state.uploads += int(upload)
                return
            record = self._count_refusal(state, now)
        if record is not None:
            # Outside the lock: the audit log's write must not hold up other silos' calls.
            self._on_limited(silo, Refusal(Reason.RATE_LIMITED, f"{problem}; {record}"))
        raise RateLimited(problem)

    def leave(self, silo: str, *, upload: bool = False) -> None:
        """Give back the place ``enter`` took (called when the RPC ends)."""
        with self._lock:
            state = self._silos[silo]
            state.calls -= 1
            state.uploads -= int(upload)

    def _count_refusal(self, state: _Silo, now: float) -> str | None:
        """Count a refusal; what the audit record says, if this one is to be recorded (lock held)."""
        window = self.spec.audit_window_seconds
        if state.recorded_at is not None and now - state.recorded_at < window:
            state.refused_since_record += 1
            return None
        since = "the first refusal" if state.recorded_at is None else f"{state.refused_since_record} more refused"
        state.recorded_at, state.refused_since_record = now, 0
        return (
            f"{since} since the previous record; further refusals in the next {window} s are counted, "
            "not recorded (spec.rateLimits.auditWindowSeconds)"
        )
