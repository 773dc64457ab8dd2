"""Offline verification of an audit log, for auditors (``fedsilo audit verify``).

Walks the file once: every record's hash must match its content, sequence numbers must
run 1, 2, 3, ..., each record must name its predecessor's hash, every checkpoint's
signature must verify with the aggregator's public key, and the file must end in a
signed ``close`` checkpoint. The first violation raises ``AuditVerificationError`` naming
the kind of tampering and the record.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

from fedsilo.identity import SignatureError, VerifyKey

from ._log import GENESIS, checkpoint_message, record_hash


class AuditVerificationError(Exception):
    """The log was tampered with; ``kind`` is edited, dropped, inserted, reordered, truncated or signature."""

    def __init__(self, kind: str, seq: int | None, line: int, message: str) -> None:
        self.kind = kind
        self.seq = seq
        self.line = line
        super().__init__(f"{kind} at line {line}" + (f" (record {seq})" if seq is not None else "") + f": {message}")


@dataclass
class VerifyReport:
    """What a successful verification covered."""

    records: int = 0
    decisions: int = 0
    denied: int = 0
    checkpoints: int = 0
    jobs: set[str] = field(default_factory=set)


def _appears_later(lines: list[str], seq: int) -> bool:
    for line in lines:
        try:
            if int(json.loads(line)["seq"]) == seq:
                return True
        except (ValueError, KeyError, TypeError):
            continue
    return False


def verify_audit_log(path: Path, key: VerifyKey) -> VerifyReport:
    """Verify ``path`` against the aggregator's public ``key``; raise on the first problem."""
    report = VerifyReport()
    head, expected_seq, sealed = GENESIS, 1, False
    lines = path.read_text(encoding="utf-8").splitlines()
    seen: set[int] = set()
    for line_number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
            seq = int(record["seq"])
        except (ValueError, KeyError, TypeError) as error:
            raise AuditVerificationError("edited", None, line_number, f"not a valid record ({error})") from error
        if record.get("hash") != record_hash(record):
            raise AuditVerificationError("edited", seq, line_number, "the record's content does not match its hash")
        if seq in seen:
            raise AuditVerificationError("inserted", seq, line_number, f"a second record numbered {seq}")
        if seq != expected_seq:
            if seq > expected_seq and not _appears_later(lines[line_number:], expected_seq):
                raise AuditVerificationError(
                    "dropped", seq, line_number, f"records {expected_seq}..{seq - 1} are missing"
                )
            raise AuditVerificationError(
                "reordered", seq, line_number, f"record {seq} stands where {expected_seq} belongs"
            )
        if record.get("prev_hash") != head:
            raise AuditVerificationError(
                "inserted", seq, line_number, "the record does not follow the previous record's hash"
            )
        if sealed:
            raise AuditVerificationError("inserted", seq, line_number, "a record follows the log's closing checkpoint")
        kind = record.get("kind")
        if kind in ("checkpoint", "close"):
            try:
                signature = base64.b64decode(record["signature"])
                if record["covers_seq"] != seq - 1 or record["chain_head"] != head:
                    raise SignatureError("the checkpoint does not cover the record before it")
                key.verify(signature, checkpoint_message(seq - 1, head, kind))
            except (SignatureError, KeyError, ValueError) as error:
                raise AuditVerificationError(
                    "signature", seq, line_number, f"checkpoint does not verify: {error}"
                ) from error
            report.checkpoints += 1
            sealed = kind == "close"
        elif kind == "decision":
            report.decisions += 1
            report.denied += record.get("decision") == "deny"
            report.jobs.add(str(record.get("job")))
        else:
            raise AuditVerificationError("edited", seq, line_number, f"unknown record kind {kind!r}")
        seen.add(seq)
        head, expected_seq = record["hash"], seq + 1
        report.records += 1
    if not sealed:
        raise AuditVerificationError(
            "truncated", expected_seq - 1, report.records, "the log does not end with a signed closing checkpoint"
        )
    return report
