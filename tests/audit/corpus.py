"""A corpus of tampered audit logs, each made from a real log by one attack, with the verdict it must get.

``tampered_logs`` takes a real log written by ``AuditLog`` (sealed twice: the aggregator was
restarted once, so there is an earlier signed close to cut back to) and returns one
``Tampering`` per kind of attack: the bytes of the tampered file, the published head to
check it against (when the attack needs one to be caught), and the expected verdict's kind
and place. The tests feed every case to the verifier, to ``fedsilo audit verify`` and to
``fedsilo audit show``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedsilo.audit import FORMAT, AuditLog, SignedHead, TamperKind, record_hash, sign_head
from fedsilo.identity import SigningKey

GENESIS = "sha256:" + "0" * 64
Record = dict[str, Any]


@dataclass(frozen=True)
class Tampering:
    """One tampered file and the verdict it must get: ``kind`` at record ``seq`` (None: no record) and ``line``."""

    data: bytes
    kind: TamperKind
    seq: int | None
    line: int | None = None
    head: SignedHead | None = None


def write_restarted_log(path: Path, key: SigningKey) -> SignedHead:
    """Ten decisions, a close, a restart, five more and a second close; the newest signed head."""
    for start, count in ((0, 10), (10, 5)):
        log = AuditLog(path, key, checkpoint_every=4)
        for i in range(start, start + count):
            log.record_decision(
                job="job",
                round_number=1 + i // 3,
                silo=f"silo-{i % 3}",
                payload_digest=f"sha256:{i:064x}",
                policy_input={"update": {"l2_norm": 0.5 * i, "num_samples": 100 + i}},
                allow=i % 4 != 0,
                reasons=[] if i % 4 else ["norm_cap_exceeded: the update's L2 norm is above the job's norm cap"],
                policy_revision="r1",
                engine="embedded",
            )
        log.close()
    head = log.signed_head
    assert head is not None
    return head


def _records(data: bytes) -> list[Record]:
    return [json.loads(line) for line in data.splitlines()]


def _dump(records: list[Record]) -> bytes:
    return b"".join(json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n" for r in records)


def _rechain(records: list[Record], start: int = 0) -> list[Record]:
    """What a forger without the key does after an edit: recompute every hash from ``start`` on."""
    previous = records[start - 1]["hash"] if start else GENESIS
    for record in records[start:]:
        record["prev_hash"] = previous
        record["hash"] = record_hash(record)
        previous = record["hash"]
    return records


def _renumbered(records: list[Record]) -> list[Record]:
    return [dict(record, seq=seq) for seq, record in enumerate(records, start=1)]


def _replace_line(data: bytes, index: int, line: bytes) -> bytes:
    lines = data.splitlines()
    lines[index] = line
    return b"".join(item + b"\n" for item in lines)


def _raw_edit(data: bytes, index: int, old: bytes, new: bytes) -> bytes:
    """Edit record ``index``'s bytes in place (no re-hash: a reader that parses loosely sees the edit)."""
    line = data.splitlines()[index]
    assert old in line, (old, line)
    return _replace_line(data, index, line.replace(old, new, 1))


def _edit(data: bytes, index: int, change: Callable[[Record], None], *, rechain: bool) -> bytes:
    records = _records(data)
    change(records[index])
    if rechain:
        _rechain(records, index)
    return _dump(records)


def _rehashed_silo(record: Record) -> None:
    record["silo"] = "someone-else"
    record["hash"] = record_hash(record)


def _resign(records: list[Record], key: SigningKey) -> list[Record]:
    """Re-sign every checkpoint with ``key`` and re-chain: a forger with a key of their own."""
    previous = GENESIS
    for record in records:
        record["prev_hash"] = previous
        if record["kind"] != "decision":
            signed = sign_head(key, FORMAT, record["kind"], record["seq"] - 1, previous)
            record |= {"key_fingerprint": signed.key_fingerprint, "signature": signed.signature}
        record["hash"] = record_hash(record)
        previous = record["hash"]
    return records


def _swap_checkpoints(data: bytes) -> bytes:
    records = _records(data)
    first, second = [r for r in records if r["kind"] == "checkpoint"][:2]
    for field in ("signature", "chain_head", "covers_seq"):
        first[field], second[field] = second[field], first[field]
    return _dump(_rechain(records))


@dataclass(frozen=True)
class Source:
    """The real log an attack starts from, and what the attacks need beside it."""

    data: bytes
    head: SignedHead
    other_log: Path
    forger: SigningKey

    @property
    def lines(self) -> list[bytes]:
        return self.data.splitlines()

    @property
    def records(self) -> list[Record]:
        return _records(self.data)

    @property
    def first_close(self) -> int:
        return next(r["seq"] for r in self.records if r["kind"] == "close")

    @property
    def decision(self) -> bytes:
        return self.lines[2]

    @property
    def own(self) -> bytes:
        """Record 3's decision as written."""
        return b'"decision":"allow"' if b'"decision":"allow"' in self.decision else b'"decision":"deny"'

    @property
    def flipped(self) -> bytes:
        """The opposite decision."""
        return b'"decision":"deny"' if self.own == b'"decision":"allow"' else b'"decision":"allow"'


#: Every attack, by name: how it turns the real log into a tampered one, and the verdict it must get.
ATTACKS: dict[str, Callable[[Source], Tampering]] = {
    "edited in place": lambda s: Tampering(_raw_edit(s.data, 2, s.own, s.flipped), TamperKind.EDITED, 3, 3),
    "edited and its hash recomputed": lambda s: Tampering(
        _edit(s.data, 1, _rehashed_silo, rechain=False),
        TamperKind.EDITED,
        2,
        2,
    ),
    "edited and re-chained without the key": lambda s: Tampering(
        _edit(s.data, 1, lambda r: r.update(reasons=["forged"]), rechain=True),
        TamperKind.SIGNATURE,
        5,
        5,
    ),
    "dropped": lambda s: Tampering(b"".join(x + b"\n" for x in s.lines[:3] + s.lines[4:]), TamperKind.DROPPED, 4, 4),
    "inserted copy": lambda s: Tampering(
        b"".join(x + b"\n" for x in [*s.lines[:4], s.lines[3], *s.lines[4:]]),
        TamperKind.INSERTED,
        4,
        5,
    ),
    "inserted and renumbered": lambda s: Tampering(
        _dump(_rechain(_renumbered([*s.records[:2], dict(s.records[1], silo="forged"), *s.records[2:]]), 2)),
        TamperKind.SIGNATURE,
        6,
        6,
    ),
    "reordered": lambda s: Tampering(
        b"".join(x + b"\n" for x in [s.lines[0], s.lines[2], s.lines[1], *s.lines[3:]]),
        TamperKind.REORDERED,
        3,
        2,
    ),
    "truncated mid-way": lambda s: Tampering(b"".join(x + b"\n" for x in s.lines[:7]), TamperKind.TRUNCATED, 7),
    "closing checkpoint removed": lambda s: Tampering(
        b"".join(x + b"\n" for x in s.lines[:-1]), TamperKind.TRUNCATED, len(s.lines) - 1
    ),
    "cut back to an earlier signed close": lambda s: Tampering(
        b"".join(x + b"\n" for x in s.lines[: s.first_close]),
        TamperKind.ROLLED_BACK,
        s.first_close,
        head=s.head,
    ),
    "replaced by another log of the same key": lambda s: Tampering(
        s.other_log.read_bytes(), TamperKind.FORKED, s.head.seq, head=s.head
    ),
    "re-signed with another key": lambda s: Tampering(
        _dump(_resign(_records(s.data), s.forger)), TamperKind.WRONG_KEY, 5, 5
    ),
    "a checkpoint signed by another key under the real fingerprint": lambda s: Tampering(
        _edit(s.data, 4, lambda r: r.update(signature=base64.b64encode(s.forger.sign(b"x")).decode()), rechain=True),
        TamperKind.SIGNATURE,
        5,
        5,
    ),
    "checkpoints swapped": lambda s: Tampering(_swap_checkpoints(s.data), TamperKind.SIGNATURE, 5, 5),
    "a duplicate key carrying the opposite decision": lambda s: Tampering(
        _replace_line(s.data, 2, s.decision[:-1] + b"," + s.flipped + b"}"),
        TamperKind.DUPLICATE_KEY,
        None,
        3,
    ),
    "a NaN literal": lambda s: Tampering(
        _raw_edit(s.data, 2, b'"round":', b'"round":NaN,"x":'), TamperKind.NOT_FINITE, None, 3
    ),
    "an infinite number": lambda s: Tampering(
        _raw_edit(s.data, 2, b'"l2_norm":', b'"l2_norm":1e999,"x":'),
        TamperKind.NOT_FINITE,
        None,
        3,
    ),
    "deep nesting": lambda s: Tampering(
        _raw_edit(s.data, 2, b'"input":{', b'"input":{"deep":' + b"[" * 100_000 + b"]" * 100_000 + b","),
        TamperKind.TOO_DEEP,
        None,
        3,
    ),
    "a non-UTF-8 byte": lambda s: Tampering(
        _raw_edit(s.data, 2, b'"silo":"silo-', b'"silo":"\xff\xfesilo-'),
        TamperKind.ENCODING,
        None,
        3,
    ),
    "a huge integer": lambda s: Tampering(
        _raw_edit(s.data, 2, b'"round":', b'"round":' + b"9" * 5000 + b',"x":'),
        TamperKind.OVERSIZED,
        None,
        3,
    ),
    "an integer above the format's bound": lambda s: Tampering(
        _edit(s.data, 2, lambda r: r.update(round=2**70), rechain=True),
        TamperKind.OVERSIZED,
        None,
        3,
    ),
    "a wrong type": lambda s: Tampering(
        _edit(s.data, 2, lambda r: r.update(round=str(r["round"])), rechain=True),
        TamperKind.MALFORMED,
        None,
        3,
    ),
    "a boolean for a number": lambda s: Tampering(
        _edit(s.data, 2, lambda r: r.update(round=True), rechain=True),
        TamperKind.MALFORMED,
        None,
        3,
    ),
    "a missing field": lambda s: Tampering(
        _edit(s.data, 2, lambda r: r.pop("reasons"), rechain=True), TamperKind.MALFORMED, None, 3
    ),
    "an extra field": lambda s: Tampering(
        _edit(s.data, 2, lambda r: r.update(approved_by="me"), rechain=True),
        TamperKind.MALFORMED,
        None,
        3,
    ),
    "an unknown record kind": lambda s: Tampering(
        _edit(s.data, 2, lambda r: r.update(kind="note"), rechain=True),
        TamperKind.MALFORMED,
        None,
        3,
    ),
    "not a JSON object": lambda s: Tampering(_replace_line(s.data, 2, b"[1, 2, 3]"), TamperKind.MALFORMED, None, 3),
    "a torn line": lambda s: Tampering(_replace_line(s.data, 5, s.lines[5][:40]), TamperKind.EDITED, None, 6),
    "trailing garbage": lambda s: Tampering(s.data + b"garbage\n", TamperKind.EDITED, None, len(s.lines) + 1),
    "an empty file": lambda s: Tampering(b"", TamperKind.TRUNCATED, None),
}


def tampered_logs(log: Path, head: SignedHead, other_log: Path) -> dict[str, Tampering]:
    """Every attack on ``log`` (written by ``write_restarted_log``), by name.

    ``other_log`` is another log signed by the same key, for the case of a file replaced
    wholesale by an honest-looking one.
    """
    source = Source(log.read_bytes(), head, other_log, SigningKey.generate())
    return {name: attack(source) for name, attack in ATTACKS.items()}
