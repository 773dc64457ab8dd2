"""Barriers for the steps of a round.

Each closes when every live participant has posted or left (a stopping silo's signed
Leave), or at the round's deadline with whoever has. A silo that left and did not post is
missing, exactly as one that let the deadline pass: the step only stops waiting for it.

The coordinator owns one ``threading.Condition``; gRPC handler threads post into a phase
and wait on the same condition, so a phase closing wakes exactly the calls blocked on it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ._contracts import JobFailed

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
    # Silos that said they leave: the step does not wait for them, and takes nothing more from them.
    left: set[str] = field(default_factory=set)

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
        if silo in self.left:
            raise PhaseClosed(f"{silo} has left this round")

    def complete(self) -> bool:
        """Whether every expected silo has posted or left."""
        return self.expected <= self.posted.keys() | self.left

    def missing(self) -> frozenset[str]:
        """Expected silos that have not posted."""
        return self.expected - self.posted.keys()


class RunCondition(threading.Condition):
    """The coordinator's condition, through which its round loop can be ended from outside.

    ``fedsilo run`` watches its silo processes; when one dies it calls ``abort`` (through
    ``JobCoordinator.abort``), and the round loop's next wait (``wait_until`` wakes at least
    once a second) raises ``JobFailed`` instead of waiting out the step's deadline. Only the
    loop's own thread raises: gRPC handler threads keep waiting and learn of the end from the
    job's final plan, as on every failure.
    """

    def __init__(self) -> None:
        super().__init__()
        self.loop: threading.Thread | None = None
        self.aborted: str | None = None

    def abort(self, reason: str) -> None:
        """End the round loop at its next wait with ``JobFailed(reason)``; the first reason stays."""
        with self:
            self.aborted = self.aborted or reason
            self.notify_all()

    def check_aborted(self) -> None:
        """Raise ``JobFailed`` in the round loop's thread once ``abort`` was called."""
        if self.aborted is not None and threading.current_thread() is self.loop:
            raise JobFailed(self.aborted)


def wait_until(condition: threading.Condition, predicate: object, deadline: float) -> bool:
    """Wait on ``condition`` (held) until ``predicate()`` or ``deadline``; return the predicate.

    On a ``RunCondition`` the round loop's waits raise ``JobFailed`` once it is aborted.
    """
    check = predicate if callable(predicate) else (lambda: bool(predicate))
    while not check():
        if isinstance(condition, RunCondition):
            condition.check_aborted()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bool(check())
        condition.wait(min(remaining, 1.0))
    return True
