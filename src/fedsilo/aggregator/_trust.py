"""Which CAs may issue each enrolled silo's client certificate, re-read when the job's files change.

``fedsilo aggregator`` (:mod:`fedsilo.runner._aggregator`) builds it from the
``silo-ca.<silo>.crt`` files the operator writes into the job's ConfigMap
(:func:`fedsilo.launch.silo_ca_file`); :class:`._service.Callers` asks it on every call, and
the TLS server asks it for the CAs to trust at every handshake (:func:`._service.serve`).

A silo's file holds one CA, or two while the silo's operator rotates its CA: the hub then
trusts both, for that silo only, until the operator drops the old one after the last
certificate it issued has expired (docs/operations.md). The kubelet swaps a mounted
ConfigMap's files in place, so the hub looks at each file's identity (inode, size, mtime) at
most once every ``recheck_seconds`` and reads it again only when that changed: no restart.
A file caught empty or unparsable leaves that silo's CAs as they were and says so: trusting
none would cut an honest silo off in the middle of a swap.

A CA dropped while the hub runs is remembered as retired, so a caller still holding a
certificate it issued (on a connection opened before the drop) is told that its silo's CA was
rotated, not that another partner's CA minted it. Each change is a log line and a record on
the ``fedsilo.audit.trust`` logger naming the silo and the CAs' fingerprints, never more.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fedsilo.identity import IssuerMismatch, ca_bundle, certificate_fingerprint, verify_issued_by

log = logging.getLogger("fedsilo.aggregator")
audit_log = logging.getLogger("fedsilo.audit.trust")

#: Seconds between looks at the CA files: a stat per silo, so cheap, yet a swapped file is seen within it.
RECHECK_SECONDS = 1.0


class IssuerRetired(IssuerMismatch):
    """A certificate from a CA its silo's operator has rotated out: the silo must dial with one from its current CA."""


class TrustFilesError(ValueError):
    """A silo's CA file is missing, empty or holds no CA certificate; the message names the silos and files."""


@dataclass(frozen=True)
class _Trusted:
    """One silo's CAs: those trusted now, and those dropped since the hub started."""

    current: tuple[bytes, ...]
    retired: tuple[bytes, ...] = ()
    # (inode, size, mtime) of the file last read, or None before the first look at it.
    seen: tuple[int, int, int] | None = None


def _identity(path: Path) -> tuple[int, int, int]:
    status = os.stat(path)
    return (status.st_ino, status.st_size, status.st_mtime_ns)


def _fingerprints(pems: tuple[bytes, ...]) -> list[str]:
    return [certificate_fingerprint(pem) for pem in pems]


class SiloTrust:
    """Each enrolled silo's trusted CAs (PEM), bound to that silo alone.

    ``SiloTrust(issuers)`` keeps the CAs it is given (one PEM bundle per silo);
    :meth:`from_files` reads them from files and follows the files' changes.
    """

    def __init__(
        self,
        issuers: Mapping[str, bytes],
        *,
        files: Mapping[str, Path] | None = None,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> None:
        self._files = dict(files or {})
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        # What the files held is read again at the first look (no file identity is known yet), so
        # a file swapped between its reading and this point is not missed.
        self._trusted = {silo: _Trusted(ca_bundle(pem)) for silo, pem in issuers.items()}
        for silo, trusted in self._trusted.items():
            self._record(silo, "trusted", trusted.current, (), ())

    @classmethod
    def from_files(cls, files: Mapping[str, Path], *, recheck_seconds: float = RECHECK_SECONDS) -> SiloTrust:
        """The CAs in each silo's file, followed as the files change.

        Raises:
            TrustFilesError: a silo has no file, an empty one, or one that is not a bundle of CA
                certificates. Without its CA a silo could not be told from one whose certificate
                another partner's CA minted, so nothing may be served.
        """
        issuers: dict[str, bytes] = {}
        problems = []
        for silo, path in files.items():
            pem = path.read_bytes() if path.is_file() else b""
            if not pem.strip():
                problems.append(f"no CA certificate for silo {silo} ({path})")
                continue
            try:
                ca_bundle(pem)
            except ValueError as error:
                problems.append(f"{path} of silo {silo} is not a bundle of CA certificates ({error})")
                continue
            issuers[silo] = pem
        if problems:
            raise TrustFilesError("; ".join(problems))
        return cls(issuers, files=files, recheck_seconds=recheck_seconds)

    def check(self, silo: str, certificate_pem: bytes) -> None:
        """Return if one of ``silo``'s trusted CAs issued ``certificate_pem``.

        Raises:
            IssuerRetired: a CA of this silo's that has been rotated out issued it.
            IssuerMismatch: no CA of this silo's did (another partner's CA, or the silo has none).
        """
        self.refresh()
        trusted = self._trusted.get(silo)
        if trusted is None:
            raise IssuerMismatch("no registered CA for this silo")
        try:
            verify_issued_by(certificate_pem, b"".join(trusted.current))
        except IssuerMismatch:
            if trusted.retired:
                try:
                    verify_issued_by(certificate_pem, b"".join(trusted.retired))
                except IssuerMismatch:
                    pass
                else:
                    raise IssuerRetired(
                        f"issued by a CA its operator has rotated out (the hub now trusts "
                        f"{', '.join(_fingerprints(trusted.current))} for it)"
                    ) from None
            raise

    def roots(self) -> bytes:
        """Every silo's trusted CAs as one PEM bundle: what the TLS handshake lets in (the binding is :meth:`check`)."""
        self.refresh()
        return b"".join(pem for trusted in self._trusted.values() for pem in trusted.current)

    def fingerprints(self) -> dict[str, list[str]]:
        """Each silo's trusted CAs by fingerprint, for logs and tests."""
        return {silo: _fingerprints(trusted.current) for silo, trusted in self._trusted.items()}

    def refresh(self) -> None:
        """Read the files whose identity changed, at most once every ``recheck_seconds``."""
        # Read without the lock first: every call asks, and nearly every time nothing is due.
        if not self._files or time.monotonic() - self._checked < self._recheck:
            return
        with self._lock:
            now = time.monotonic()
            if now - self._checked < self._recheck:
                return
            self._checked = now
            for silo, path in self._files.items():
                self._reread(silo, path)

    def _reread(self, silo: str, path: Path) -> None:
        before = self._trusted[silo]
        try:
            seen = _identity(path)
            if seen == before.seen:
                return
            current = ca_bundle(path.read_bytes())
        except (OSError, ValueError) as error:
            # Caught mid-swap, or damaged: keep what was trusted; looked at again at the next check.
            log.warning(
                "CAs of silo %s kept as they were: %s cannot be read as CA certificates (%s)", silo, path, error
            )
            return
        added = tuple(pem for pem in current if pem not in before.current)
        removed = tuple(pem for pem in before.current if pem not in current)
        retired = tuple(pem for pem in before.retired if pem not in current) + removed
        self._trusted[silo] = _Trusted(current, retired, seen)
        if added or removed:
            self._record(silo, "changed", current, added, removed)

    def _record(
        self, silo: str, reason: str, current: tuple[bytes, ...], added: tuple[bytes, ...], removed: tuple[bytes, ...]
    ) -> None:
        trusted, dropped = _fingerprints(current), _fingerprints(removed)
        record = {
            "event": "silo_cas_trusted",
            "reason": reason,
            "silo": silo,
            "file": str(self._files[silo]) if silo in self._files else None,
            "trusted": trusted,
            "added": _fingerprints(added),
            "removed": dropped,
            "at": dt.datetime.now(dt.UTC).isoformat(),
        }
        audit_log.info("silo trust %s", json.dumps(record, sort_keys=True))
        log.warning(
            "silo %s: certificates from CA %s accepted%s",
            silo,
            ", ".join(trusted),
            f"; from CA {', '.join(dropped)} no longer" if dropped else "",
        )
