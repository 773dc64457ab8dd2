"""Which silos are there: joined with how many records, waiting for a round, or gone.

A silo is gone once it misses a step's deadline or leaves (its sidecar is stopping and
said so), and stays gone until it joins again:
its sidecar joins after its trainer greets it, so a Join is proof of a working silo,
while a sidecar whose trainer died keeps asking for rounds and must not make every later
round wait its full timeout. The coordinator's condition variable guards this state; the
methods below are called with it held.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence

from ._phases import wait_until

log = logging.getLogger("fedsilo.aggregator")


class Presence:
    """The silos of one job as the hub sees them (guarded by the coordinator's condition)."""

    def __init__(self, silos: Sequence[str], cond: threading.Condition) -> None:
        self._silos = tuple(silos)
        self._cond = cond
        self.joined: dict[str, int] = {}
        self._gone: set[str] = set()
        self._waiting: dict[str, int] = {}

    def join(self, silo: str, num_samples: int) -> None:
        """``silo`` is there with ``num_samples`` records; a gone silo is back."""
        self.joined[silo] = num_samples
        self._gone.discard(silo)
        self._cond.notify_all()

    def waiting(self, silo: str, after_round: int) -> None:
        """``silo`` asks for the round after ``after_round``."""
        self._waiting[silo] = after_round
        self._cond.notify_all()

    def served(self, silo: str) -> None:
        """``silo`` got its plan."""
        self._waiting.pop(silo, None)

    def await_joins(self, deadline: float) -> int:
        """Wait until every silo joined or ``deadline``; how many joined."""
        wait_until(self._cond, lambda: len(self.joined) == len(self._silos), deadline)
        return len(self.joined)

    def participants(self, after_round: int | None, deadline: float) -> tuple[str, ...]:
        """Silos ready for the next round: every live silo, waiting up to ``deadline``; the late become gone.

        A silo is ready when it waits for the round after ``after_round``; ``None`` (the first
        round of a resumed hub) takes any waiting silo: one that rejoined after the restart
        does not know which round the hub went back to.
        """

        def live() -> list[str]:
            return [s for s in self._silos if s in self.joined and s not in self._gone]

        def is_ready(silo: str) -> bool:
            return silo in self._waiting if after_round is None else self._waiting.get(silo) == after_round

        wait_until(self._cond, lambda: all(is_ready(s) for s in live()), deadline)
        ready = tuple(s for s in live() if is_ready(s))
        for silo in live():
            if silo not in ready:
                self._gone.add(silo)
        return ready

    def gone(self, silos: Iterable[str], round_number: int, why: str) -> None:
        """``silos`` are gone until they join again: they missed a step's deadline, or left (``why`` says which)."""
        for silo in silos:
            log.warning("round %d: %s %s; it is gone until it joins again", round_number, silo, why)
            self._gone.add(silo)
