"""Barriers for the steps of a round.

Each closes when every live participant has posted, or at the round's deadline with
whoever has.

The coordinator owns one ``threading.Condition``; gRPC handler threads post into a phase
and wait on the same condition, so a phase closing wakes exactly the calls blocked on it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


class PhaseClosed(Exception):
    """A silo posted into a phase that had already closed (it is too late for this round)."""


@dataclass
class Phase(Generic[T]):
    """One barrier: ``expected`` silos may post once each until it closes."""

    name: str
    expected: frozenset[str]
    deadline: float
    posted: dict[str, T] = field(default_factory=dict)
    closed: bool = False

    def post(self, silo: str, value: T) -> None:
        """Record ``silo``'s message; raise ``PhaseClosed`` when late or not expected."""
        self.check_open(silo)
        self.posted[silo] = value

    def check_open(self, silo: str) -> None:
        """Raise ``PhaseClosed`` unless ``silo`` may still post (expected, not yet posted, not closed)."""
        if self.closed:
            raise PhaseClosed(f"the {self.name} step of this round has closed")
        if silo not in self.expected:
            raise PhaseClosed(f"{silo} is not a participant of the {self.name} step")
        if silo in self.posted:
            raise PhaseClosed(f"{silo} already sent its {self.name} message")

    def complete(self) -> bool:
        """Whether every expected silo has posted."""
        return len(self.posted) == len(self.expected)

    def missing(self) -> frozenset[str]:
        """Expected silos that have not posted."""
        return self.expected - self.posted.keys()


def wait_until(condition: threading.Condition, predicate: object, deadline: float) -> bool:
    """Wait on ``condition`` (held) until ``predicate()`` or ``deadline``; return the predicate."""
    check = predicate if callable(predicate) else (lambda: bool(predicate))
    while not check():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bool(check())
        condition.wait(min(remaining, 1.0))
    return True
