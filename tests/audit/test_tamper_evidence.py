"""Verification finds an edited, dropped, inserted or reordered record, a truncated log and a
wrong key, and names the kind and the record; an untouched log verifies."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from fedsilo.audit import AuditVerificationError, TamperKind, record_hash, verify_audit_log
from fedsilo.identity import SigningKey

from .conftest import DECISIONS

Lines = list[str]


def _lines(path: Path) -> Lines:
    return path.read_text().splitlines()


def _records(lines: Lines) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines]


def _dump(records: list[dict[str, object]]) -> Lines:
    return [json.dumps(r, sort_keys=True) for r in records]


def _flip_decision(lines: Lines) -> Lines:
    """Record 3 (line 3) says allow where it said deny, or the reverse; its hash is left alone."""
    records = _records(lines)
    records[2]["decision"] = "deny" if records[2]["decision"] == "allow" else "allow"
    return _dump(records)


def _rehash_from(records: list[dict[str, object]], start: int) -> list[dict[str, object]]:
    previous = records[start - 1]["hash"] if start else "sha256:" + "0" * 64
    for record in records[start:]:
        record["prev_hash"] = previous
        record["hash"] = record_hash(record)
        previous = record["hash"]
    return records


def _edit_and_rehash_chain(lines: Lines) -> Lines:
    """A careful forger: edits record 2 and recomputes every later hash; the signed checkpoint catches it."""
    records = _records(lines)
    records[1]["reasons"] = ["forged reason"]
    return _dump(_rehash_from(records, 1))


def _edit_and_rehash_one(lines: Lines) -> Lines:
    """Edits record 2 and recomputes its hash only: record 3 no longer follows it."""
    records = _records(lines)
    records[1]["silo"] = "someone-else"
    records[1]["hash"] = record_hash(records[1])
    return _dump(records)


def _insert_copy(lines: Lines) -> Lines:
    return [*lines[:4], lines[3], *lines[4:]]


def _insert_renumbered(lines: Lines) -> Lines:
    """A forged record slipped in as number 3, the rest renumbered and re-hashed: caught by checkpoint 5."""
    records = _records(lines)
    forged = dict(records[1], silo="forged")
    records.insert(2, forged)
    for seq, record in enumerate(records, start=1):
        record["seq"] = seq
    return _dump(_rehash_from(records, 2))


TAMPERING: list[tuple[str, Callable[[Lines], Lines], TamperKind, int | None]] = [
    ("edited", _flip_decision, TamperKind.EDITED, 3),
    ("edited and its hash recomputed", _edit_and_rehash_one, TamperKind.EDITED, 2),
    ("edited and the whole chain recomputed", _edit_and_rehash_chain, TamperKind.SIGNATURE, 5),
    ("dropped", lambda lines: lines[:3] + lines[4:], TamperKind.DROPPED, 4),
    ("two dropped", lambda lines: lines[:1] + lines[3:], TamperKind.DROPPED, 2),
    ("inserted copy", _insert_copy, TamperKind.INSERTED, 4),
    ("inserted and renumbered", _insert_renumbered, TamperKind.SIGNATURE, 6),
    ("reordered", lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], TamperKind.REORDERED, 3),
    ("truncated after a checkpoint", lambda lines: lines[:10], TamperKind.TRUNCATED, 10),
    ("truncated mid-way", lambda lines: lines[:7], TamperKind.TRUNCATED, 7),
    ("closing checkpoint removed", lambda lines: lines[:-1], TamperKind.TRUNCATED, 12),
    ("emptied", lambda lines: [], TamperKind.TRUNCATED, None),
    ("torn line", lambda lines: [*lines[:5], lines[5][:40], *lines[6:]], TamperKind.EDITED, None),
]


def test_an_untouched_log_verifies(sealed_log: Path, key: SigningKey) -> None:
    report = verify_audit_log(sealed_log, key.public_key)
    assert (report.records, report.decisions, report.denied, report.checkpoints) == (DECISIONS + 3, DECISIONS, 3, 3)
    assert report.jobs == ("job", "other")
    assert report.head_seq == DECISIONS + 3 and report.head_hash == json.loads(_lines(sealed_log)[-1])["hash"]
    assert report.signer == key.public_key.fingerprint()


@pytest.mark.parametrize(("name", "tamper", "kind", "seq"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampering_is_detected_and_named(
    sealed_log: Path, key: SigningKey, name: str, tamper: Callable[[Lines], Lines], kind: TamperKind, seq: int | None
) -> None:
    tampered = tamper(_lines(sealed_log))
    sealed_log.write_text("".join(line + "\n" for line in tampered))
    with pytest.raises(AuditVerificationError) as caught:
        verify_audit_log(sealed_log, key.public_key)
    assert (caught.value.kind, caught.value.seq) == (kind, seq), str(caught.value)
    assert str(caught.value).startswith(kind.value)


def test_a_wrong_key_is_named_as_such(sealed_log: Path) -> None:
    other = SigningKey.generate().public_key
    with pytest.raises(AuditVerificationError) as caught:
        verify_audit_log(sealed_log, other)
    assert caught.value.kind is TamperKind.WRONG_KEY and caught.value.seq == 5
    assert other.fingerprint() in str(caught.value)


def test_a_checkpoint_signed_by_another_key_is_a_bad_signature(sealed_log: Path, key: SigningKey) -> None:
    """A forger who copies the real fingerprint into a checkpoint cannot make its signature verify."""
    records = _records(_lines(sealed_log))
    forger = SigningKey.generate()
    records[4]["signature"] = base64.b64encode(forger.sign(b"anything")).decode()
    records[4]["hash"] = record_hash(records[4])
    sealed_log.write_text("".join(line + "\n" for line in _dump(_rehash_from(records, 5))))
    with pytest.raises(AuditVerificationError) as caught:
        verify_audit_log(sealed_log, key.public_key)
    assert caught.value.kind is TamperKind.SIGNATURE and caught.value.seq == 5
