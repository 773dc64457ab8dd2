"""Offline verification of an audit log, for auditors (``fedsilo audit verify``) and for resuming.

One pass over the file: every record's hash must match its content, sequence numbers must
run 1, 2, 3, ..., each record must carry its predecessor's hash, every checkpoint must be
signed by the aggregator's key over the chain head it names, and the file must end with a
signed ``close`` checkpoint. The first violation raises ``AuditVerificationError`` with the
kind of tampering and the record (sequence number and line) where it shows.

What this cannot see on its own: a log cut back to an *earlier* close (after a restart)
looks complete. ``VerifyReport.head_seq``/``head_hash`` are what to anchor elsewhere (the
job's status, a ticket) to rule that out.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from fedsilo.identity import SignatureError, VerifyKey

from ._chain import GENESIS, RecordKind, checkpoint_message, record_hash


class TamperKind(StrEnum):
    """How a log departs from what the aggregator wrote."""

    EDITED = "edited"
    DROPPED = "dropped"
    INSERTED = "inserted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"
    SIGNATURE = "signature"
    WRONG_KEY = "wrong_key"


class AuditVerificationError(Exception):
    """The log fails verification: ``kind`` of tampering, at record ``seq`` (``line`` in the file)."""

    def __init__(self, kind: TamperKind, seq: int | None, message: str, *, line: int | None = None) -> None:
        self.kind = kind
        self.seq = seq
        self.line = line
        self.message = message
        where = []
        if seq is not None:
            where.append(f"record {seq}")
        if line is not None:
            where.append(f"line {line}")
        super().__init__(f"{kind.value}" + (f" at {', '.join(where)}" if where else "") + f": {message}")


@dataclass(frozen=True)
class VerifyReport:
    """What a successful verification covered, and the chain head to anchor elsewhere."""

    records: int
    decisions: int
    denied: int
    checkpoints: int
    jobs: tuple[str, ...]
    head_seq: int
    head_hash: str
    signer: str
    first_time: str | None
    last_time: str | None


@dataclass(frozen=True)
class LogScan:
    """A verified prefix of a log: its report, and whether a ``close`` checkpoint ends it."""

    report: VerifyReport
    sealed: bool
    signed_through: int


_REQUIRED = ("seq", "kind", "prev_hash", "hash")
_DECISION_FIELDS = ("time", "job", "round", "silo", "decision", "reasons", "policy_revision", "input_digest")


def _seq_of(line: str) -> int | None:
    try:
        seq = json.loads(line)["seq"]
    except (ValueError, KeyError, TypeError):
        return None
    return seq if isinstance(seq, int) else None


def _parse(line: str, number: int) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as error:
        raise AuditVerificationError(TamperKind.EDITED, None, f"not a JSON record ({error})", line=number) from error
    if not isinstance(record, dict) or any(name not in record for name in _REQUIRED):
        raise AuditVerificationError(
            TamperKind.EDITED, None, f"not a record: needs {', '.join(_REQUIRED)}", line=number
        )
    if not isinstance(record["seq"], int) or isinstance(record["seq"], bool):
        raise AuditVerificationError(TamperKind.EDITED, None, "the sequence number is not an integer", line=number)
    return record


def _check_checkpoint(record: dict[str, Any], head: str, key: VerifyKey, signed_through: int, number: int) -> None:
    seq: int = record["seq"]
    if record.get("key_fingerprint") != key.fingerprint():
        raise AuditVerificationError(
            TamperKind.WRONG_KEY,
            seq,
            f"the log was signed by {record.get('key_fingerprint')}, the key given is {key.fingerprint()}",
            line=number,
        )
    rewritten = f"records {signed_through + 1}..{seq - 1} were changed after they were signed and the chain re-hashed"
    if record.get("covers_seq") != seq - 1 or record.get("chain_head") != head:
        raise AuditVerificationError(
            TamperKind.SIGNATURE,
            seq,
            f"the checkpoint vouches for record {record.get('covers_seq')} with hash {record.get('chain_head')}, "
            f"but record {seq - 1} hashes to {head}: {rewritten}",
            line=number,
        )
    try:
        signature = base64.b64decode(str(record.get("signature")), validate=True)
        key.verify(signature, checkpoint_message(RecordKind(record["kind"]), seq - 1, head))
    except (SignatureError, binascii.Error) as error:
        raise AuditVerificationError(
            TamperKind.SIGNATURE,
            seq,
            f"the checkpoint's signature does not verify: {rewritten}, or the checkpoint is forged",
            line=number,
        ) from error


def scan_audit_log(path: Path, key: VerifyKey) -> LogScan:
    """Verify every record of ``path``; raise on the first problem. An unsealed end is reported, not raised."""
    lines = path.read_text(encoding="utf-8").splitlines()
    head, expected, signed_through = GENESIS, 1, 0
    lines_of: dict[int, int] = {}
    decisions = denied = checkpoints = 0
    jobs: set[str] = set()
    times: list[str] = []
    last_kind: RecordKind | None = None
    for number, line in enumerate(lines, start=1):
        record = _parse(line, number)
        seq: int = record["seq"]
        if record["hash"] != record_hash(record):
            raise AuditVerificationError(
                TamperKind.EDITED, seq, "the record's content does not match its hash", line=number
            )
        if seq in lines_of:
            raise AuditVerificationError(
                TamperKind.INSERTED,
                seq,
                f"a second record numbered {seq} (the first is on line {lines_of[seq]})",
                line=number,
            )
        if seq != expected:
            if seq > expected and any(_seq_of(later) == expected for later in lines[number:]):
                raise AuditVerificationError(
                    TamperKind.REORDERED, seq, f"record {seq} stands where record {expected} belongs", line=number
                )
            if seq > expected:
                missing = str(expected) if seq == expected + 1 else f"{expected}..{seq - 1}"
                raise AuditVerificationError(
                    TamperKind.DROPPED, expected, f"record(s) {missing} are missing before record {seq}", line=number
                )
            raise AuditVerificationError(
                TamperKind.INSERTED, seq, f"record {seq} is out of sequence where {expected} belongs", line=number
            )
        if record["prev_hash"] != head:
            raise AuditVerificationError(
                TamperKind.EDITED,
                seq - 1,
                f"record {seq} does not carry the hash of record {seq - 1}: that record was changed and re-hashed, "
                "or replaced",
                line=number - 1,
            )
        try:
            kind = RecordKind(record["kind"])
        except ValueError as error:
            raise AuditVerificationError(
                TamperKind.EDITED, seq, f"unknown record kind {record['kind']!r}", line=number
            ) from error
        if kind is RecordKind.DECISION:
            absent = [name for name in _DECISION_FIELDS if name not in record]
            if absent:
                raise AuditVerificationError(
                    TamperKind.EDITED, seq, f"a decision without {', '.join(absent)}", line=number
                )
            decisions += 1
            denied += record["decision"] != "allow"
            jobs.add(str(record["job"]))
            times.append(str(record["time"]))
        else:
            _check_checkpoint(record, head, key, signed_through, number)
            checkpoints += 1
            signed_through = seq
        lines_of[seq] = number
        head, expected, last_kind = record["hash"], seq + 1, kind
    report = VerifyReport(
        records=len(lines),
        decisions=decisions,
        denied=denied,
        checkpoints=checkpoints,
        jobs=tuple(sorted(jobs)),
        head_seq=expected - 1,
        head_hash=head,
        signer=key.fingerprint(),
        first_time=times[0] if times else None,
        last_time=times[-1] if times else None,
    )
    return LogScan(report, last_kind is RecordKind.CLOSE, signed_through)


def verify_audit_log(path: Path, key: VerifyKey) -> VerifyReport:
    """Verify ``path`` against the aggregator's public ``key``; raise ``AuditVerificationError`` on any tampering."""
    scan = scan_audit_log(path, key)
    if scan.sealed:
        return scan.report
    last = scan.report.head_seq
    if last == 0:
        detail = "it is empty"
    elif scan.signed_through == last:
        detail = f"it ends at checkpoint {last}, which is not a close: whatever followed was cut off"
    else:
        detail = (
            f"records {scan.signed_through + 1}..{last} are covered by no signature: the log was cut short, or "
            "the aggregator did not shut down cleanly"
        )
    raise AuditVerificationError(
        TamperKind.TRUNCATED, last or None, f"the log does not end with a signed closing checkpoint; {detail}"
    )
