"""Upload slots: how many update payloads the hub reads at once, and at most one per silo.

A silo may reserve its slot before it streams (``ReserveUpload``): the hub answers once a slot
is free and keeps it for that silo for ``RESERVATION_SECONDS``. A silo waiting for its
reservation has sent none of its payload, while one that streams at once waits inside its
upload call with a stream window of its payload in the hub's buffers; so with reservations the
hub's memory for uploads is the slots' windows, not one window per waiting silo, and the
window can be as large as a distant silo's throughput needs (docs/big-models.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fedsilo.policy import Reason, Refusal

#: How long a reserved slot waits for its silo's upload: the sidecar streams right after the
#: answer, so this only needs to outlast a slow connection's call set-up. A silo that reserves
#: and never streams keeps the others waiting this long at most.
RESERVATION_SECONDS = 15.0


class UploadSlots:
    """At most ``slots`` payloads buffered or reserved at once, and at most one per silo.

    A plain payload is held in memory until it is admitted or dropped, and a masked one holds a
    chunk and a file of its bytes until then (``_streamed.py``), so the hub bounds how many it
    reads at once. One silo may hold one slot only: a silo that opens several streams
    and stalls them cannot starve the others (each stream also has its own deadline, set
    by the gRPC edge).
    """

    def __init__(self, slots: int, reservation_seconds: float = RESERVATION_SECONDS) -> None:
        self._slots = slots
        self._reservation_seconds = reservation_seconds
        self._cond = threading.Condition()
        self._uploading: set[str] = set()
        # Silo -> monotonic time its reserved slot lapses unless its upload takes it.
        self._reserved: dict[str, float] = {}

    def reserve(self, silo: str, timeout: float) -> float:
        """Keep a slot for ``silo``'s next upload; the seconds it is kept. ``Refusal(UPLOAD_BUSY)`` if none frees in time.

        A silo that holds a reservation renews it; one that is uploading is refused.
        """
        with self._cond:
            if silo in self._uploading:
                raise Refusal(Reason.UPLOAD_BUSY, f"{silo} is already uploading an update; one at a time")
            if silo not in self._reserved:
                self._wait_for_a_free_slot(timeout)
            self._reserved[silo] = time.monotonic() + self._reservation_seconds
            return self._reservation_seconds

    def withdraw(self, silo: str) -> None:
        """Free ``silo``'s reserved slot at once (its reservation call ended before the answer reached it)."""
        with self._cond:
            if self._reserved.pop(silo, None) is not None:
                self._cond.notify_all()

    @contextmanager
    def hold(self, silo: str, timeout: float) -> Iterator[None]:
        """A slot for ``silo``'s one upload: its reservation, else one freed within ``timeout``.

        ``Refusal(UPLOAD_BUSY)`` if it is uploading already or no slot frees in time.
        """
        with self._cond:
            if silo in self._uploading:
                raise Refusal(Reason.UPLOAD_BUSY, f"{silo} is already uploading an update; one at a time")
            lapses = self._reserved.pop(silo, None)
            if lapses is None or lapses <= time.monotonic():
                self._wait_for_a_free_slot(timeout)
            self._uploading.add(silo)
        try:
            yield
        finally:
            with self._cond:
                self._uploading.discard(silo)
                self._cond.notify_all()

    def _wait_for_a_free_slot(self, timeout: float) -> None:
        """Return once a slot is free (``self._cond`` held); lapsed reservations free theirs."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            now = time.monotonic()
            for silo in [s for s, lapses in self._reserved.items() if lapses <= now]:
                del self._reserved[silo]
            if len(self._uploading) + len(self._reserved) < self._slots:
                return
            if now >= deadline:
                raise Refusal(Reason.UPLOAD_BUSY, "no upload slot freed before the round's deadline")
            # Wake when a slot may free: an upload ends (notified), or the next reservation lapses.
            self._cond.wait(min([deadline, *self._reserved.values()]) - now)
