"""One lock per object, for reconcilers that several handlers may call for the same object at once.

kopf runs one object's handlers one at a time, but a Silo's event may rebuild the jobs that
name it while a job's own handler runs; both would create the same certificate or pods.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class KeyedLocks:
    """A lock per key (an object's uid), created on first use and dropped with :meth:`forget`."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold the lock of ``key`` for the duration of the block."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def forget(self, key: str) -> None:
        """Drop the lock of an object that is gone."""
        with self._guard:
            self._locks.pop(key, None)
