"""A corpus of tampered privacy ledgers, each made from a real signed ledger by one attack, with its verdict.

``write_signed_ledger`` writes a real ledger through ``PrivacyLedger`` (eight charges, each
signed with the writer's key). ``ATTACKS`` holds, by name, how someone with write access
to the file (but not the key) changes it, and the verdict ``verify_ledger`` must give:
the kind and the row (0: the file as a whole). The SQL attacks first drop the append-only
triggers, as anyone who can write the file can.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from fedsilo.audit import SignedHead, TamperKind, sign_head
from fedsilo.identity import SigningKey
from fedsilo.privacy import DpSgdEvent, GaussianEvent
from fedsilo.privacy.ledger import FORMAT, PrivacyLedger
from fedsilo.privacy.ledger._chain import row_digest

ROWS = 8


def write_signed_ledger(path: Path, key: SigningKey) -> SignedHead:
    """Eight charges by two silos over four rounds, each signed; the newest signed head."""
    with PrivacyLedger(path, key) as ledger:
        for number in range(1, 5):
            ledger.charge(
                "hospital-a", "job-1", number, GaussianEvent(2.0, 1), idempotency_key=f"a{number}", delta=1e-5
            )
            ledger.charge(
                "hospital-b", "job-1", number, DpSgdEvent(1.1, 0.01, 100), idempotency_key=f"b{number}", delta=1e-5
            )
        head = ledger.signed_head()
    assert head is not None and head.seq == ROWS
    return head


@dataclass(frozen=True)
class Source:
    """The real ledger an attack starts from (copied for each attack), and what attacks need beside it."""

    path: Path
    head: SignedHead
    other: Path
    forger: SigningKey


@dataclass(frozen=True)
class Tampering:
    """The verdict a tampered ledger must get: ``kind`` at row ``seq`` of ``table`` (0: the whole file)."""

    kind: TamperKind
    seq: int
    table: str = "row"
    head: SignedHead | None = None


def _sql(path: Path, *statements: str, parameters: tuple[object, ...] = ()) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        for trigger in ("charges_no_update", "charges_no_delete", "checkpoints_no_update", "checkpoints_no_delete"):
            db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        for statement in statements:
            db.execute(statement, parameters if "?" in statement else ())


def _rechain(path: Path, start: int, *, resign: SigningKey | None = None) -> None:
    """What a forger does after an edit: recompute every digest from row ``start`` on (and re-sign, with a key)."""
    with closing(sqlite3.connect(path)) as db, db:
        db.row_factory = sqlite3.Row
        previous = db.execute("SELECT digest FROM charges WHERE seq = ?", (start - 1,)).fetchone()
        digest = previous["digest"] if previous else None
        for row in list(db.execute("SELECT * FROM charges WHERE seq >= ? ORDER BY seq", (start,))):
            document = dict(row)
            if digest is not None:
                document["prev_digest"] = digest
            document["digest"] = row_digest(document)
            db.execute(
                "UPDATE charges SET prev_digest = ?, digest = ? WHERE seq = ?",
                (document["prev_digest"], document["digest"], row["seq"]),
            )
            digest = document["digest"]
        if resign is not None:
            for row in list(db.execute("SELECT seq, digest FROM charges")):
                signed = sign_head(resign, FORMAT, "checkpoint", row["seq"], row["digest"])
                db.execute(
                    "UPDATE checkpoints SET chain_head = ?, key_fingerprint = ?, signature = ? WHERE covers_seq = ?",
                    (signed.hash, signed.key_fingerprint, signed.signature, row["seq"]),
                )


def _edit(
    statement: str, *, rechain_from: int | None = None, parameters: tuple[object, ...] = ()
) -> Callable[[Source], None]:
    def attack(source: Source) -> None:
        _sql(source.path, statement, parameters=parameters)
        if rechain_from is not None:
            _rechain(source.path, rechain_from)

    return attack


def _rehash_one(source: Source) -> None:
    """Edit row 3 and recompute its digest only: row 4 no longer follows it."""
    _sql(source.path, "UPDATE charges SET silo = 'someone-else' WHERE seq = 3")
    with closing(sqlite3.connect(source.path)) as db, db:
        db.row_factory = sqlite3.Row
        row = dict(db.execute("SELECT * FROM charges WHERE seq = 3").fetchone())
        db.execute("UPDATE charges SET digest = ? WHERE seq = 3", (row_digest(row),))


def _resigned(source: Source) -> None:
    _sql(source.path, "UPDATE charges SET epsilon_job = epsilon_job / 2 WHERE seq = 3")
    _rechain(source.path, 3, resign=source.forger)


def _insert_at_end(source: Source) -> None:
    with closing(sqlite3.connect(source.path)) as db, db:
        db.row_factory = sqlite3.Row
        last = dict(db.execute("SELECT * FROM charges WHERE seq = ?", (ROWS,)).fetchone())
        forged = last | {"seq": ROWS + 1, "round": 5, "idempotency_key": "forged", "prev_digest": last["digest"]}
        forged["digest"] = row_digest(forged)
        columns = ", ".join(forged)
        db.execute(f"INSERT INTO charges ({columns}) VALUES ({', '.join('?' * len(forged))})", tuple(forged.values()))


def _insert_renumbered(source: Source) -> None:
    _sql(
        source.path,
        "UPDATE charges SET seq = seq + 100 WHERE seq >= 3",
        "UPDATE charges SET seq = seq - 99 WHERE seq >= 100",
        "INSERT INTO charges SELECT 3, silo, job, 99, 'forged', mechanism, accountant, delta, epsilon_job, "
        "epsilon_lifetime, charged_at, prev_digest, digest FROM charges WHERE seq = 2",
    )
    _rechain(source.path, 3)


def _reorder(source: Source) -> None:
    _sql(
        source.path,
        "UPDATE charges SET seq = 100 WHERE seq = 3",
        "UPDATE charges SET seq = 3 WHERE seq = 4",
        "UPDATE charges SET seq = 4 WHERE seq = 100",
    )


def _swap_checkpoints(source: Source) -> None:
    with closing(sqlite3.connect(source.path)) as db, db:
        two, three = (
            db.execute("SELECT signature FROM checkpoints WHERE covers_seq = ?", (s,)).fetchone()[0] for s in (2, 3)
        )
        db.execute("DROP TRIGGER checkpoints_no_update")
        db.execute("UPDATE checkpoints SET signature = ? WHERE covers_seq = 2", (three,))
        db.execute("UPDATE checkpoints SET signature = ? WHERE covers_seq = 3", (two,))


def _drop_column(source: Source) -> None:
    _sql(source.path, "ALTER TABLE charges DROP COLUMN accountant")


def _replace_file(content: Callable[[bytes], bytes]) -> Callable[[Source], None]:
    def attack(source: Source) -> None:
        source.path.write_bytes(content(source.path.read_bytes()))

    return attack


def _replace_with_other(source: Source) -> None:
    shutil.copyfile(source.other, source.path)


def _cut_back(source: Source) -> None:
    _sql(source.path, "DELETE FROM checkpoints WHERE covers_seq > 6", "DELETE FROM charges WHERE seq > 6")


_MECHANISM = "UPDATE charges SET mechanism = ? WHERE seq = 3"

#: Every attack by name: what it does to a copy of the real ledger, and the verdict it must get.
ATTACKS: dict[str, tuple[Callable[[Source], None], Callable[[Source], Tampering]]] = {
    "edited epsilon": (
        _edit("UPDATE charges SET epsilon_job = epsilon_job / 2 WHERE seq = 3"),
        lambda s: Tampering(TamperKind.EDITED, 3),
    ),
    "edited and its digest recomputed": (_rehash_one, lambda s: Tampering(TamperKind.EDITED, 4)),
    "edited and re-chained without the key": (
        _edit("UPDATE charges SET epsilon_job = epsilon_job / 2 WHERE seq = 3", rechain_from=3),
        lambda s: Tampering(TamperKind.SIGNATURE, 3, "checkpoint"),
    ),
    "a NaN epsilon, re-chained": (
        _edit("UPDATE charges SET epsilon_job = 'NaN' WHERE seq = 3", rechain_from=3),
        lambda s: Tampering(TamperKind.NOT_FINITE, 3),
    ),
    "re-signed with another key": (_resigned, lambda s: Tampering(TamperKind.WRONG_KEY, 1, "checkpoint")),
    "dropped": (_edit("DELETE FROM charges WHERE seq = 5"), lambda s: Tampering(TamperKind.DROPPED, 5)),
    "inserted at the end": (_insert_at_end, lambda s: Tampering(TamperKind.INSERTED, ROWS + 1)),
    "inserted and renumbered": (_insert_renumbered, lambda s: Tampering(TamperKind.SIGNATURE, 3, "checkpoint")),
    "reordered": (_reorder, lambda s: Tampering(TamperKind.REORDERED, 3)),
    "truncated": (_edit("DELETE FROM charges WHERE seq > 6"), lambda s: Tampering(TamperKind.TRUNCATED, 7)),
    "cut back to an earlier signed row": (_cut_back, lambda s: Tampering(TamperKind.ROLLED_BACK, 6, head=s.head)),
    "replaced by another ledger of the same key": (
        _replace_with_other,
        lambda s: Tampering(TamperKind.FORKED, ROWS, head=s.head),
    ),
    "signatures removed": (_edit("DELETE FROM checkpoints"), lambda s: Tampering(TamperKind.UNSIGNED, 1)),
    "checkpoints swapped": (_swap_checkpoints, lambda s: Tampering(TamperKind.SIGNATURE, 2, "checkpoint")),
    "a checkpoint's head edited": (
        _edit(f"UPDATE checkpoints SET chain_head = 'sha256:{'1' * 64}' WHERE covers_seq = 4"),
        lambda s: Tampering(TamperKind.SIGNATURE, 4, "checkpoint"),
    ),
    "a duplicate key in the mechanism": (
        _edit(
            _MECHANISM,
            rechain_from=3,
            parameters=('{"count":1,"kind":"gaussian","noise_multiplier":2.0,"noise_multiplier":20.0}',),
        ),
        lambda s: Tampering(TamperKind.DUPLICATE_KEY, 3),
    ),
    "a NaN in the mechanism": (
        _edit(_MECHANISM, rechain_from=3, parameters=('{"count":1,"kind":"gaussian","noise_multiplier":NaN}',)),
        lambda s: Tampering(TamperKind.NOT_FINITE, 3),
    ),
    "deep nesting in the mechanism": (
        _edit(_MECHANISM, rechain_from=3, parameters=("[" * 1000 + "]" * 1000,)),
        lambda s: Tampering(TamperKind.TOO_DEEP, 3),
    ),
    "a huge integer in the mechanism": (
        _edit(
            _MECHANISM,
            rechain_from=3,
            parameters=('{"count":' + "9" * 500 + ',"kind":"gaussian","noise_multiplier":2.0}',),
        ),
        lambda s: Tampering(TamperKind.OVERSIZED, 3),
    ),
    "an extra field in the mechanism": (
        _edit(_MECHANISM, rechain_from=3, parameters=('{"count":1,"kind":"gaussian","noise_multiplier":2.0,"x":1}',)),
        lambda s: Tampering(TamperKind.MALFORMED, 3),
    ),
    "a non-UTF-8 byte": (
        _edit("UPDATE charges SET silo = CAST(X'FF686F73706974616C' AS TEXT) WHERE seq = 2"),
        lambda s: Tampering(TamperKind.ENCODING, 2),
    ),
    "a huge round number": (
        _edit("UPDATE charges SET round = 9223372036854775807 WHERE seq = 3", rechain_from=3),
        lambda s: Tampering(TamperKind.OVERSIZED, 3),
    ),
    "a wrong type": (
        _edit("UPDATE charges SET epsilon_job = 'cheap' WHERE seq = 3", rechain_from=3),
        lambda s: Tampering(TamperKind.MALFORMED, 3),
    ),
    "a missing column": (_drop_column, lambda s: Tampering(TamperKind.MALFORMED, 0)),
    "an extra column": (
        _edit("ALTER TABLE charges ADD COLUMN approved_by TEXT"),
        lambda s: Tampering(TamperKind.MALFORMED, 0),
    ),
    "trailing garbage": (_replace_file(lambda data: data + b"garbage"), lambda s: Tampering(TamperKind.MALFORMED, 0)),
    "not a database": (_replace_file(lambda data: b"garbage" * 1000), lambda s: Tampering(TamperKind.MALFORMED, 0)),
    "an empty file": (_replace_file(lambda data: b""), lambda s: Tampering(TamperKind.TRUNCATED, 0)),
}
