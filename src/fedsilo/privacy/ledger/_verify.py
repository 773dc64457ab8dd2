"""Offline verification of a privacy ledger, for auditors (``fedsilo ledger verify``) and the ledger itself.

The file is opened read-only (``open_read_only``: SQLite's ``mode=ro``, and ``immutable``
when no write-ahead log is beside it), so verifying never changes a byte or the mtime of
what it checks. One pass, the first problem raises ``LedgerIntegrityError`` with its kind
and row:

- the file is a SQLite database with exactly the ledger's tables and columns, and nothing
  appended after its last page;
- every row's text is UTF-8, every row types as a ``LedgerRow`` (no NaN epsilon, no text
  where a number belongs, bounded integers) and its mechanism parses strictly;
- rows run 1, 2, 3, ..., each carries its predecessor's digest, each digest matches;
- with the writer's public key: every checkpoint is signed by it over the digest of the
  row it covers, and the last row is covered (the writer signs each charge in the charge's
  own transaction, so an uncovered row was added by someone without the key);
- with a head published outside the file (``published``): the ledger still holds it.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pydantic

from fedsilo.audit import SignedHead, TamperedError, TamperKind, check_against_published, check_head, strict_kind
from fedsilo.identity import VerifyKey
from fedsilo.protocol import MessageError

from ._chain import (
    CHARGE_COLUMNS,
    CHECKPOINT_COLUMNS,
    FORMAT,
    GENESIS,
    ChainHead,
    CheckpointRow,
    LedgerIntegrityError,
    LedgerRow,
    row_digest,
)

# How far from its place a row is looked for when its digest fits another sequence number.
_REORDER_WINDOW = 16


@dataclass(frozen=True)
class LedgerReport:
    """What a successful verification covered, and the heads to anchor elsewhere."""

    head: ChainHead
    checkpoints: int
    # The newest checkpoint's signed head (None for a ledger never signed): what to publish.
    signed_head: SignedHead | None
    # The fingerprints of the keys the signatures were checked with; None: only the hash chain was checked.
    signer: str | None


def _has_wal(path: Path) -> bool:
    return path.with_name(path.name + "-wal").exists()


def read_only_uri(path: Path) -> str:
    """The SQLite URI that opens ``path`` without writing to it.

    ``mode=ro`` never writes the database file; ``immutable`` also takes no locks and
    skips journal recovery, which is right only while no writer's log is pending beside it
    (a writer's ``-wal`` holds committed charges not yet in the file).
    """
    return path.resolve().as_uri() + "?mode=ro" + ("" if _has_wal(path) else "&immutable=1")


@contextmanager
def open_read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the ledger at ``path`` whose text comes back as bytes, to decode strictly."""
    db = sqlite3.connect(read_only_uri(path), uri=True, check_same_thread=False)
    db.text_factory = bytes
    with closing(db):
        yield db


def _decoded(raw: sqlite3.Row, columns: tuple[str, ...], place: int, table: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for column in columns:
        value = raw[column]
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8", errors="strict")
            except UnicodeDecodeError as error:
                raise LedgerIntegrityError(
                    TamperKind.ENCODING, place, f"column {column} is not UTF-8 (byte {error.start})", table=table
                ) from None
        if column in _NUMERIC and _not_finite(value):
            raise LedgerIntegrityError(
                TamperKind.NOT_FINITE, place, f"column {column} holds {value!r}, not a number", table=table
            )
        values[column] = value
    return values


_NUMERIC = frozenset({"seq", "round", "delta", "epsilon_job", "epsilon_lifetime", "covers_seq"})


def _not_finite(value: object) -> bool:
    """A NaN, or its spelling as text (SQLite stores a float NaN as NULL, so a forger writes text)."""
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower().lstrip("+-") in {"nan", "inf", "infinity"}


_Model = TypeVar("_Model", LedgerRow, CheckpointRow)


def typed_row(model: type[_Model], values: dict[str, Any], place: int, table: str) -> _Model:
    """``values`` as a ``model``; the verdict names each wrong column without echoing its (untrusted) value."""
    try:
        return model.model_validate(values, strict=True)
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors(include_url=False, include_input=False)
        )
        raise LedgerIntegrityError(
            strict_kind(MessageError(problems)), place, f"not a {model.__name__}: {problems}", table=table
        ) from None


def _columns(db: sqlite3.Connection, table: str) -> tuple[str, ...]:
    return tuple(
        row[1].decode() if isinstance(row[1], bytes) else row[1] for row in db.execute(f"PRAGMA table_info({table})")
    )


def _check_layout(db: sqlite3.Connection, path: Path, immutable: bool) -> bool:
    """Refuse a file that is not the ledger's database; whether it has a checkpoints table."""
    if path.stat().st_size == 0:
        raise LedgerIntegrityError(TamperKind.TRUNCATED, 0, "the file is empty: the ledger was emptied")
    tables = {row[0].decode() for row in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    if "charges" not in tables:
        raise LedgerIntegrityError(TamperKind.TRUNCATED, 0, "the file holds no charges table: the ledger was emptied")
    for table, expected in (("charges", CHARGE_COLUMNS), ("checkpoints", CHECKPOINT_COLUMNS)):
        if table not in tables:
            continue
        found = _columns(db, table)
        if set(found) != set(expected):
            missing = sorted(set(expected) - set(found))
            extra = sorted(set(found) - set(expected))
            raise LedgerIntegrityError(
                TamperKind.MALFORMED,
                0,
                f"the {table} table's columns were changed (missing: {', '.join(missing) or '-'}; "
                f"extra: {', '.join(extra) or '-'})",
            )
    if immutable:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        extra_bytes = path.stat().st_size - page_size * pages
        if extra_bytes > 0:
            raise LedgerIntegrityError(
                TamperKind.MALFORMED, 0, f"{extra_bytes} bytes follow the database's last page: something was appended"
            )
    return "checkpoints" in tables


def _check_row(row: LedgerRow, previous: ChainHead) -> None:
    expected = previous.seq + 1
    if row.seq != expected:
        missing = str(expected) if row.seq == expected + 1 else f"{expected}..{row.seq - 1}"
        raise LedgerIntegrityError(
            TamperKind.DROPPED, expected, f"missing: row(s) {missing} belong before row {row.seq}"
        )
    document = row.model_dump()
    if row_digest(document) != row.digest:
        written_as = next(
            (
                seq
                for seq in range(max(1, row.seq - _REORDER_WINDOW), row.seq + _REORDER_WINDOW)
                if seq != row.seq and row_digest(document | {"seq": seq}) == row.digest
            ),
            None,
        )
        if written_as is not None:
            raise LedgerIntegrityError(
                TamperKind.REORDERED, row.seq, f"the row written as row {written_as} stands in row {row.seq}'s place"
            )
        raise LedgerIntegrityError(TamperKind.EDITED, row.seq, "was changed after it was written (digest differs)")
    if row.prev_digest != previous.digest:
        raise LedgerIntegrityError(
            TamperKind.EDITED,
            row.seq,
            "does not follow the row before it (previous digest differs): that row was changed and re-hashed",
        )
    row.event()


def _read_rows(db: sqlite3.Connection) -> list[LedgerRow]:
    raws = list(db.execute(f"SELECT {', '.join(CHARGE_COLUMNS)} FROM charges ORDER BY seq"))  # noqa: S608
    return [
        typed_row(LedgerRow, _decoded(raw, CHARGE_COLUMNS, number, "row"), number, "row")
        for number, raw in enumerate(raws, 1)
    ]


def _read_checkpoints(db: sqlite3.Connection) -> list[CheckpointRow]:
    raws = list(db.execute(f"SELECT {', '.join(CHECKPOINT_COLUMNS)} FROM checkpoints ORDER BY covers_seq"))  # noqa: S608
    return [
        typed_row(CheckpointRow, _decoded(raw, CHECKPOINT_COLUMNS, number, "checkpoint"), number, "checkpoint")
        for number, raw in enumerate(raws, 1)
    ]


def _check_checkpoints(
    checkpoints: list[CheckpointRow], digests: dict[int, str], keys: dict[str, VerifyKey] | None
) -> None:
    last = max(digests, default=0)
    for checkpoint in checkpoints:
        seq = checkpoint.covers_seq
        if seq not in digests:
            raise LedgerIntegrityError(
                TamperKind.TRUNCATED,
                seq,
                f"a signed checkpoint covers row {seq}, but the ledger ends at row {last}: rows were cut off",
            )
        rewritten = f"rows up to {seq} were changed after they were signed and the chain re-hashed"
        if checkpoint.chain_head != digests[seq]:
            raise LedgerIntegrityError(
                TamperKind.SIGNATURE,
                seq,
                f"the checkpoint vouches for digest {checkpoint.chain_head}, the row's is {digests[seq]}: {rewritten}",
                table="checkpoint",
            )
        if keys is not None:
            # A key not given is named as the wrong key by check_head.
            key = keys.get(checkpoint.key_fingerprint) or next(iter(keys.values()))
            try:
                check_head(checkpoint.signed_head(), key, None, rewritten)
            except TamperedError as error:
                raise LedgerIntegrityError(error.kind, seq, error.message, table="checkpoint") from None
    if keys is None or not last:
        return
    if not checkpoints:
        raise LedgerIntegrityError(
            TamperKind.UNSIGNED, 1, "no signed checkpoint covers any row: the ledger was never signed, or re-written"
        )
    covered = checkpoints[-1].covers_seq
    if covered < last:
        raise LedgerIntegrityError(
            TamperKind.INSERTED,
            covered + 1,
            f"rows {covered + 1}..{last} follow the last signed checkpoint (row {covered}); the writer signs every "
            "charge in its own transaction, so they were added by someone without the key",
        )


def _check_anchor(anchored: ChainHead, digests: dict[int, str]) -> None:
    if anchored.seq > 0 and anchored.seq not in digests:
        raise LedgerIntegrityError(
            TamperKind.ROLLED_BACK, anchored.seq, "missing: the ledger was truncated below the anchored head"
        )
    if digests.get(anchored.seq, GENESIS) != anchored.digest:
        raise LedgerIntegrityError(TamperKind.FORKED, anchored.seq, "differs from the anchored head")


def verify_ledger(
    path: Path,
    key: VerifyKey | Sequence[VerifyKey] | None = None,
    *,
    published: SignedHead | None = None,
    anchored: ChainHead | None = None,
) -> LedgerReport:
    """Verify the ledger at ``path`` without writing to it; ``LedgerIntegrityError`` names the kind and the row.

    ``key`` is the writer's public key (the hub's, or the silo's identity key), or the keys
    of every writer the ledger had (a silo whose identity was replaced signed with each):
    without it only the hash chain is checked, which anyone can recompute after an edit. ``published``
    is a signed head published outside the file (it needs ``key``); ``anchored`` an unsigned
    head the caller trusts (an earlier ``verify``).
    """
    if published is not None and key is None:
        raise ValueError("a published head is checked with the writer's key: give the key too")
    given = [key] if isinstance(key, VerifyKey) else list(key or ())
    keys = {k.fingerprint(): k for k in given} if given else None
    immutable = not _has_wal(path)
    try:
        with open_read_only(path) as db:
            db.row_factory = sqlite3.Row
            signed = _check_layout(db, path, immutable)
            rows = _read_rows(db)
            checkpoints = _read_checkpoints(db) if signed else []
    except UnicodeDecodeError as error:
        # Values come back as bytes and are decoded per column; this is a table or column name.
        raise LedgerIntegrityError(TamperKind.ENCODING, 0, f"a name in the schema is not UTF-8 ({error})") from None
    except sqlite3.DatabaseError as error:
        raise LedgerIntegrityError(TamperKind.MALFORMED, 0, f"not a readable SQLite database ({error})") from None
    previous = ChainHead.genesis()
    for row in rows:
        _check_row(row, previous)
        previous = ChainHead(row.seq, row.digest)
    digests = {row.seq: row.digest for row in rows}
    _check_checkpoints(checkpoints, digests, keys)
    if anchored is not None:
        _check_anchor(anchored, digests)
    if published is not None and keys is not None:
        if published.format != FORMAT:
            raise LedgerIntegrityError(
                TamperKind.MALFORMED, 0, f"the published head is of {published.format}, not {FORMAT}"
            )
        try:
            signer = keys.get(published.key_fingerprint) or next(iter(keys.values()))
            check_against_published(published, signer, digests, previous.seq, unit="row")
        except TamperedError as error:
            raise LedgerIntegrityError(error.kind, min(published.seq, previous.seq), error.message) from None
    return LedgerReport(
        head=previous,
        checkpoints=len(checkpoints),
        signed_head=checkpoints[-1].signed_head() if checkpoints else None,
        signer=", ".join(keys) if keys is not None else None,
    )
