"""Upload slots: how many update payloads the hub reads at once, and at most one per silo."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fedsilo.policy import Reason, Refusal


class UploadSlots:
    """At most ``slots`` payloads buffered at once, and at most one per silo.

    A plain payload is held in memory until it is admitted or dropped, and a masked one holds a
    chunk and a file of its bytes until then (``_streamed.py``), so the hub bounds how many it
    reads at once. One silo may hold one slot only: a silo that opens several streams
    and stalls them cannot starve the others (each stream also has its own deadline, set
    by the gRPC edge).
    """

    def __init__(self, slots: int) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._uploading: set[str] = set()

    @contextmanager
    def hold(self, silo: str, timeout: float) -> Iterator[None]:
        """A slot for ``silo``'s one upload; ``Refusal(UPLOAD_BUSY)`` if it has one or none frees in time."""
        with self._lock:
            if silo in self._uploading:
                raise Refusal(Reason.UPLOAD_BUSY, f"{silo} is already uploading an update; one at a time")
            self._uploading.add(silo)
        try:
            if not self._slots.acquire(timeout=max(timeout, 0.0)):
                raise Refusal(Reason.UPLOAD_BUSY, "no upload slot freed before the round's deadline")
            try:
                yield
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._uploading.discard(silo)
