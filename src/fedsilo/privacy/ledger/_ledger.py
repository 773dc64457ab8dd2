"""``PrivacyLedger``: every silo's privacy charges, append-only and hash-chained, in SQLite.

The hub's policy gate asks the ledger what accepting an update would bring a silo's
epsilon to (``epsilon_if_accepted``, ``would_exceed``) before the update enters the
aggregate; the hub then ``charge``s the admitted update and, once the round's aggregate
is taken, ``acknowledge``s it. ``fedsilo ledger show`` reads ``history``; auditors run
``verify``.

The ledger stores mechanisms (``DpSgdEvent``, ``GaussianEvent``), not epsilons: every
epsilon it answers is a replay of the silo's events into one ``Accountant``, within a job
or across all the silo's jobs for its lifetime ceiling. Each row also records the
cumulative epsilons as they stood after it, for people reading the ledger; nothing adds
them up.

Crash safety. A charge is one SQLite transaction (WAL journal, full sync), keyed by its
``idempotency_key`` and by (silo, job, round), both UNIQUE: after a crash it is either
wholly there or not there, and charging the same update again returns the row already
written instead of a second one. The acknowledgement is a separate, later write. A charge
without one (the process died in between) still counts as spent: the noisy update may
have left the silo and entered an aggregate someone saw, and privacy, once released,
cannot be refunded. Acknowledgements only tell an operator which rounds completed.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from fedsilo.audit import SignedHead, TamperKind
from fedsilo.identity import SigningKey, VerifyKey
from fedsilo.privacy import AccountantKind, Mechanism, epsilon_for, mechanism_from_json, mechanism_json

from ._chain import (
    CHARGE_COLUMNS,
    CHECKPOINT_COLUMNS,
    ChainHead,
    CheckpointRow,
    LedgerIntegrityError,
    LedgerRow,
    row_digest,
)
from ._verify import LedgerReport, read_only_uri, typed_row, verify_ledger

_SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    seq INTEGER PRIMARY KEY,
    silo TEXT NOT NULL,
    job TEXT NOT NULL,
    round INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    mechanism TEXT NOT NULL,
    accountant TEXT NOT NULL,
    delta REAL NOT NULL,
    epsilon_job REAL NOT NULL,
    epsilon_lifetime REAL NOT NULL,
    charged_at TEXT NOT NULL,
    prev_digest TEXT NOT NULL,
    digest TEXT NOT NULL,
    UNIQUE (silo, job, round)
);
CREATE TABLE IF NOT EXISTS acknowledgements (
    seq INTEGER PRIMARY KEY REFERENCES charges (seq),
    acknowledged_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    covers_seq INTEGER PRIMARY KEY REFERENCES charges (seq),
    chain_head TEXT NOT NULL,
    kind TEXT NOT NULL,
    key_fingerprint TEXT NOT NULL,
    signature TEXT NOT NULL,
    signed_at TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS charges_no_update BEFORE UPDATE ON charges
BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS charges_no_delete BEFORE DELETE ON charges
BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
"""

_SELECT = (
    "SELECT charges.*, acknowledgements.acknowledged_at FROM charges "
    "LEFT JOIN acknowledgements ON acknowledgements.seq = charges.seq"
)
# The chain's last row, whose digest the next row carries.
_LAST = "SELECT seq, digest FROM charges ORDER BY seq DESC LIMIT 1"


class LedgerConflict(Exception):
    """A charge that contradicts one already recorded (same key or round, different facts)."""


@dataclass(frozen=True)
class Charge:
    """One row of the ledger: a mechanism charged to a silo for one round of one job."""

    seq: int
    silo: str
    job: str
    round: int
    idempotency_key: str
    mechanism: Mechanism
    accountant: AccountantKind
    delta: float
    # Composed epsilons after this charge, at this row's delta and accountant.
    epsilon_job: float
    epsilon_lifetime: float
    charged_at: str
    prev_digest: str
    digest: str
    acknowledged_at: str | None


@dataclass(frozen=True)
class SpendProjection:
    """A silo's epsilon now and if one more mechanism were charged, in one job and over its lifetime."""

    job_spent: float
    job_if_accepted: float
    lifetime_spent: float
    lifetime_if_accepted: float


@dataclass(frozen=True)
class BudgetCheck:
    """Whether charging a mechanism would take a silo above its job or lifetime ceiling, and why."""

    projection: SpendProjection
    job_ceiling: float | None
    silo_ceiling: float | None

    @property
    def job_exceeded(self) -> bool:
        """The job's per-silo ceiling would be crossed."""
        return self.job_ceiling is not None and self.projection.job_if_accepted > self.job_ceiling

    @property
    def silo_exceeded(self) -> bool:
        """The silo's lifetime ceiling would be crossed."""
        return self.silo_ceiling is not None and self.projection.lifetime_if_accepted > self.silo_ceiling

    @property
    def exceeds(self) -> bool:
        """Either ceiling would be crossed: the update must not be aggregated."""
        return self.job_exceeded or self.silo_exceeded

    @property
    def reasons(self) -> tuple[str, ...]:
        """The crossed ceilings, in the words the update policy uses."""
        reasons = []
        if self.job_exceeded:
            reasons.append(
                f"job_epsilon_exceeded: accepting would bring the silo's epsilon in this job to "
                f"{self.projection.job_if_accepted:.4g}, above the job's ceiling {self.job_ceiling:g}"
            )
        if self.silo_exceeded:
            reasons.append(
                f"silo_epsilon_exceeded: accepting would bring the silo's epsilon to "
                f"{self.projection.lifetime_if_accepted:.4g}, above the silo's own ceiling {self.silo_ceiling:g}"
            )
        return tuple(reasons)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _charge(row: sqlite3.Row) -> Charge:
    """A stored row as a ``Charge``, typed strictly: a tampered row is a ``LedgerIntegrityError``, not a crash later."""
    place = row["seq"] if isinstance(row["seq"], int) else 0
    stored = set(row.keys())
    typed = typed_row(LedgerRow, {column: row[column] for column in CHARGE_COLUMNS if column in stored}, place, "row")
    return Charge(
        **typed.model_dump(exclude={"mechanism"}), mechanism=typed.event(), acknowledged_at=row["acknowledged_at"]
    )


def run_name(job: str, run_id: str) -> str:
    """How both ledgers name one run of a job: a rerun, or a job recreated under its name, is a new job."""
    return f"{job}/{run_id}" if run_id else job


def release_key(job: str, silo: str, round_number: int, payload_digest: str) -> str:
    """The idempotency key of one noisy release, the same in the silo's ledger and the hub's.

    ``job`` is the run's name (:func:`run_name`). The silo is part of it because two silos
    may send byte-identical payloads (plain mode, no noise), which are still two releases.
    """
    return f"{job}/{silo}/{round_number}/{payload_digest}"


class PrivacyLedger:
    """The privacy ledger in the SQLite file at ``path`` (created if missing).

    With ``signing_key`` (the hub's key for the hub's ledger, a silo's identity key for its
    own), every charge is signed in its own transaction: a checkpoint row holds the
    signature over the chain head, so a ledger rewritten and re-chained by someone without
    the key fails ``verify_ledger`` with the public key. ``signed_head`` is what to publish
    outside the file. ``read_only`` opens an existing file for reading without writing a byte.

    Safe to share between threads; several processes may open the same file (SQLite
    serializes the writers). Use it as a context manager or call ``close``.
    """

    def __init__(self, path: Path | str, signing_key: SigningKey | None = None, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self._key = signing_key
        self._lock = threading.Lock()
        if read_only:
            self._db = sqlite3.connect(read_only_uri(self.path), uri=True, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: every write below opens its own explicit transaction.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed charge survives power loss too, not only a killed process.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> PrivacyLedger:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock before reading, so the chain head and the history
        # a charge is computed from cannot change under it (another process included).
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, where: str = "", parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return list(self._db.execute(f"{_SELECT} {where} ORDER BY charges.seq", parameters))
        except UnicodeDecodeError as error:
            # A table or column name (or, from SQLite's own decoder, a value) that is not UTF-8.
            raise LedgerIntegrityError(
                TamperKind.ENCODING, 0, f"the ledger holds text that is not UTF-8 ({error})"
            ) from None
        except sqlite3.OperationalError as error:
            # How SQLite reports a value that is not UTF-8, or a table that is not there.
            raise LedgerIntegrityError(TamperKind.MALFORMED, 0, f"the ledger cannot be read: {error}") from None
        except sqlite3.DatabaseError as error:
            raise LedgerIntegrityError(TamperKind.MALFORMED, 0, f"not a readable SQLite database ({error})") from None

    def _events(self, silo: str, job: str | None) -> list[Mechanism]:
        if job is None:
            rows = self._db.execute("SELECT mechanism FROM charges WHERE silo = ? ORDER BY seq", (silo,))
        else:
            rows = self._db.execute(
                "SELECT mechanism FROM charges WHERE silo = ? AND job = ? ORDER BY seq", (silo, job)
            )
        return [mechanism_from_json(row["mechanism"]) for row in rows]

    def charge(
        self,
        silo: str,
        job: str,
        round_number: int,
        event: Mechanism,
        *,
        idempotency_key: str,
        delta: float,
        accountant: AccountantKind = "rdp",
        resumed: bool = False,
    ) -> Charge:
        """Record that ``silo`` spent ``event`` in ``round_number`` of ``job``, once.

        ``idempotency_key`` names the noisy release being charged; use the update's payload
        digest. Charging the same key again with the same facts returns the row already
        written. ``LedgerConflict`` if the key was charged with other facts, or if the round
        was already charged to this silo for a different update: a second noisy release in
        one round costs privacy again, and a round is charged once, so the hub must refuse it.

        ``resumed``: the round is being run again after the hub crashed, and the release is
        the one already charged, sent again (the silo keeps it for that; see
        ``fedsilo.sidecar``). Then a charge of the round with the same mechanism is that
        release's, and it is returned, not charged twice; another mechanism still conflicts.
        """
        mechanism = mechanism_json(event).decode()
        with self._write() as db:
            existing = db.execute(f"{_SELECT} WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
            if existing is not None:
                facts = (silo, job, round_number, mechanism, accountant, delta)
                recorded = tuple(existing[c] for c in ("silo", "job", "round", "mechanism", "accountant", "delta"))
                if recorded != facts:
                    raise LedgerConflict(
                        f"idempotency key {idempotency_key!r} was charged as row {existing['seq']} with other facts: "
                        f"{recorded} is recorded, {facts} was asked"
                    )
                return _charge(existing)
            taken = db.execute(
                f"{_SELECT} WHERE silo = ? AND job = ? AND round = ?", (silo, job, round_number)
            ).fetchone()
            if taken is not None:
                same = (taken["mechanism"], taken["accountant"], taken["delta"]) == (mechanism, accountant, delta)
                if resumed and same:
                    return _charge(taken)
                raise LedgerConflict(
                    f"round {round_number} of job {job!r} is already charged to silo {silo!r} (row {taken['seq']}) "
                    "for a different update"
                )
            job_events = [*self._events(silo, job), event]
            lifetime_events = [*self._events(silo, None), event]
            previous = ChainHead.of_last(db.execute(_LAST).fetchone())
            row: dict[str, Any] = {
                "seq": previous.seq + 1,
                "silo": silo,
                "job": job,
                "round": round_number,
                "idempotency_key": idempotency_key,
                "mechanism": mechanism,
                "accountant": accountant,
                "delta": delta,
                "epsilon_job": epsilon_for(job_events, delta, accountant),
                "epsilon_lifetime": epsilon_for(lifetime_events, delta, accountant),
                "charged_at": _now(),
                "prev_digest": previous.digest,
            }
            row["digest"] = row_digest(row)
            db.execute(
                f"INSERT INTO charges ({', '.join(CHARGE_COLUMNS)}) "  # noqa: S608
                f"VALUES ({', '.join('?' * len(CHARGE_COLUMNS))})",
                [row[c] for c in CHARGE_COLUMNS],
            )
            if self._key is not None:
                # In the charge's own transaction: a committed charge is always a signed one.
                checkpoint = CheckpointRow.sign(
                    self._key, ChainHead(row["seq"], row["digest"]), row["charged_at"]
                ).model_dump()
                db.execute(
                    f"INSERT INTO checkpoints ({', '.join(CHECKPOINT_COLUMNS)}) "  # noqa: S608
                    f"VALUES ({', '.join('?' * len(CHECKPOINT_COLUMNS))})",
                    [checkpoint[c] for c in CHECKPOINT_COLUMNS],
                )
            return _charge(db.execute(f"{_SELECT} WHERE charges.seq = ?", (row["seq"],)).fetchone())

    def acknowledge(self, silo: str, job: str, round_number: int) -> None:
        """Note that the round's aggregate took the charged update; repeating it changes nothing.

        ``KeyError`` if the round was never charged to ``silo``.
        """
        with self._write() as db:
            row = db.execute(
                "SELECT seq FROM charges WHERE silo = ? AND job = ? AND round = ?", (silo, job, round_number)
            ).fetchone()
            if row is None:
                raise KeyError(f"round {round_number} of job {job!r} was never charged to silo {silo!r}")
            db.execute(
                "INSERT OR IGNORE INTO acknowledgements (seq, acknowledged_at) VALUES (?, ?)", (row["seq"], _now())
            )

    def find(self, idempotency_key: str) -> Charge | None:
        """The charge recorded under ``idempotency_key``, if any: a retried update's earlier charge."""
        with self._lock:
            rows = self._rows("WHERE idempotency_key = ?", (idempotency_key,))
        return _charge(rows[0]) if rows else None

    def charged(self, silo: str, job: str, round_number: int) -> Charge | None:
        """The charge of ``silo`` for ``round_number`` of ``job``, if the round was charged."""
        with self._lock:
            rows = self._rows(
                "WHERE charges.silo = ? AND charges.job = ? AND charges.round = ?", (silo, job, round_number)
            )
        return _charge(rows[0]) if rows else None

    def history(self, silo: str | None = None, job: str | None = None) -> tuple[Charge, ...]:
        """Every charge in ledger order, optionally only one silo's and one job's."""
        clauses = [(c, v) for c, v in (("silo", silo), ("job", job)) if v is not None]
        where = ("WHERE " + " AND ".join(f"charges.{c} = ?" for c, _ in clauses)) if clauses else ""
        with self._lock:
            rows = self._rows(where, [v for _, v in clauses])
        return tuple(_charge(row) for row in rows)

    def pending(self) -> tuple[Charge, ...]:
        """Charges not acknowledged yet: rounds whose outcome a restarted hub must find out (they count as spent)."""
        with self._lock:
            rows = self._rows("WHERE acknowledgements.seq IS NULL")
        return tuple(_charge(row) for row in rows)

    def epsilon_spent(
        self, silo: str, job: str | None = None, *, delta: float, accountant: AccountantKind = "rdp"
    ) -> float:
        """The epsilon ``silo`` has spent at ``delta``: in ``job``, or over all its jobs when ``job`` is None."""
        with self._lock:
            events = self._events(silo, job)
        return epsilon_for(events, delta, accountant)

    def epsilon_if_accepted(
        self, silo: str, job: str, event: Mechanism, *, delta: float, accountant: AccountantKind = "rdp"
    ) -> SpendProjection:
        """What ``silo``'s epsilon would be with ``event`` charged too; writes nothing.

        The policy gate asks this before an update is aggregated. For an update whose
        charge is already recorded (a retry), read its ``Charge`` with ``find`` instead.
        """
        with self._lock:
            job_events = self._events(silo, job)
            lifetime_events = self._events(silo, None)
        return SpendProjection(
            job_spent=epsilon_for(job_events, delta, accountant),
            job_if_accepted=epsilon_for([*job_events, event], delta, accountant),
            lifetime_spent=epsilon_for(lifetime_events, delta, accountant),
            lifetime_if_accepted=epsilon_for([*lifetime_events, event], delta, accountant),
        )

    def would_exceed(
        self,
        silo: str,
        job: str,
        event: Mechanism,
        *,
        job_ceiling: float | None,
        silo_ceiling: float | None,
        delta: float,
        accountant: AccountantKind = "rdp",
    ) -> BudgetCheck:
        """Whether charging ``event`` would take ``silo`` above the job's or its own lifetime ceiling (None: no ceiling)."""
        projection = self.epsilon_if_accepted(silo, job, event, delta=delta, accountant=accountant)
        return BudgetCheck(projection, job_ceiling, silo_ceiling)

    def head(self) -> ChainHead:
        """The chain's last row, to anchor in a signed record; sequence 0 and the genesis digest when empty."""
        with self._lock:
            return ChainHead.of_last(self._db.execute(_LAST).fetchone())

    def signed_head(self) -> SignedHead | None:
        """The newest signed checkpoint's head, to publish outside the file; None if nothing was signed."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(CHECKPOINT_COLUMNS)} FROM checkpoints ORDER BY covers_seq DESC LIMIT 1"  # noqa: S608
            ).fetchone()
        return (
            None if row is None else typed_row(CheckpointRow, dict(row), row["covers_seq"], "checkpoint").signed_head()
        )

    def verify(
        self,
        expected_head: ChainHead | None = None,
        *,
        key: VerifyKey | Sequence[VerifyKey] | None = None,
        published: SignedHead | None = None,
    ) -> ChainHead:
        """Recompute the chain and return its head; ``LedgerIntegrityError`` at the first row that breaks it.

        Reads the file through its own read-only connection (``verify_ledger``). An edited,
        inserted, reordered or removed row breaks the chain. Removing the last rows does not:
        pass a head anchored earlier, or the signed head published outside the file, to
        catch that. With ``key`` the signatures are checked too.
        """
        return self.report(expected_head, key=key, published=published).head

    def report(
        self,
        expected_head: ChainHead | None = None,
        *,
        key: VerifyKey | Sequence[VerifyKey] | None = None,
        published: SignedHead | None = None,
    ) -> LedgerReport:
        """``verify`` with what it covered: the head, the number of checkpoints, the newest signed head."""
        return verify_ledger(self.path, key, published=published, anchored=expected_head)
