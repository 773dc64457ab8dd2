"""The silos' standing, taken at round boundaries: each silo's key, its retired keys, its suspension.

A Silo's public key (rotation) and its ``spec.suspended`` (a platform team's ban) may change
while a job runs, and the aggregator must not restart for either. ``JobCoordinator`` calls
``Standing.advance`` when it opens a round, under its lock: the ``StandingSource`` it was
built with (the job manifest re-read from disk: the run's manifest locally, the ConfigMap
the operator keeps current in a cluster) says what each silo's standing is now, and only
from that moment on do the admission steps see it. A change in the middle of a round
therefore never splits the round: every update of one round is judged by one standing.

A rotated-out key is *retired*, not forgotten: an update that verifies against it is
refused as ``key_retired`` (not merely ``signature_invalid``), so the audit log says the
silo signed with its old key after the boundary. A retired key is never taken back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fedsilo.identity import SignatureError, VerifyKey

log = logging.getLogger("fedsilo.aggregator")


@dataclass(frozen=True)
class SiloStanding:
    """What a source says of one silo: the key its updates must verify with, and why it is suspended (or None)."""

    key: VerifyKey
    suspension: str | None = None


#: Called at every round boundary; the standing of (some of) the job's silos. It may raise
#: (a file half-written, a manifest that no longer validates): the previous standing stays.
StandingSource = Callable[[], Mapping[str, SiloStanding]]


@dataclass(frozen=True)
class StandingChange:
    """One change that took effect at a round boundary, for the log and the observer."""

    silo: str
    round: int
    what: str


class Standing:
    """The standing every admission step of the current round reads; changed only by ``advance``.

    ``keys`` is the mapping the admission steps, evaluation reports and secure aggregation
    verify with; ``advance`` updates it in place so every holder of it sees the new keys at
    the same moment.
    """

    def __init__(self, keys: Mapping[str, VerifyKey], source: StandingSource | None = None) -> None:
        self.keys: dict[str, VerifyKey] = dict(keys)
        self._source = source
        self._retired: dict[str, list[VerifyKey]] = {}
        # Silo -> (reason, the round the suspension took effect in).
        self._suspended: dict[str, tuple[str, int]] = {}

    def advance(self, round_number: int) -> list[StandingChange]:
        """Take the source's standing for ``round_number`` (the round now opening); the changes made."""
        if self._source is None:
            return []
        try:
            given = self._source()
        except Exception as error:  # whatever the source's file holds, the job goes on as it stood
            log.warning("round %d: silo standing not refreshed, the previous one stays: %s", round_number, error)
            return []
        changes: list[StandingChange] = []
        for silo in self.keys:
            standing = given.get(silo)
            if standing is None:
                log.warning("round %d: the standing source names no silo %s; its standing stays", round_number, silo)
                continue
            changes += self._rotate(silo, standing.key, round_number)
            changes += self._suspend(silo, standing.suspension, round_number)
        for change in changes:
            log.warning("round %d: silo %s %s", change.round, change.silo, change.what)
        return changes

    def _rotate(self, silo: str, key: VerifyKey, round_number: int) -> list[StandingChange]:
        current = self.keys[silo]
        if key == current:
            return []
        if key in self._retired.get(silo, ()):
            log.warning(
                "round %d: silo %s's registered key %s was retired before; it is not taken back, %s stays",
                round_number,
                silo,
                key.fingerprint(),
                current.fingerprint(),
            )
            return []
        self._retired.setdefault(silo, []).append(current)
        self.keys[silo] = key
        return [StandingChange(silo, round_number, f"rotated its key: {current.fingerprint()} -> {key.fingerprint()}")]

    def _suspend(self, silo: str, reason: str | None, round_number: int) -> list[StandingChange]:
        before = self._suspended.get(silo)
        if reason is None:
            if before is None:
                return []
            del self._suspended[silo]
            return [StandingChange(silo, round_number, "is readmitted")]
        if before is not None and before[0] == reason:
            return []
        # A new reason for a suspended silo keeps the round it was first suspended in.
        self._suspended[silo] = (reason, before[1] if before is not None else round_number)
        return [StandingChange(silo, round_number, f"is suspended: {reason}")]

    def suspension(self, silo: str) -> tuple[str, int] | None:
        """Why ``silo`` is suspended and since which round; None when it is admitted."""
        return self._suspended.get(silo)

    def retired_key_signed(self, silo: str, signature: bytes, data: bytes) -> VerifyKey | None:
        """The retired key of ``silo`` that signed ``data``, if one did."""
        for key in self._retired.get(silo, ()):
            try:
                key.verify(signature, data)
            except SignatureError:
                continue
            return key
        return None
