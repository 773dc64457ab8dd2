"""The audit log's on-disk format: record hashing, the chain's start, what a checkpoint signs.

``AuditLog`` (writing) and ``verify_audit_log`` (reading) both call in here, so the writer
and the verifier cannot drift apart on what a record's hash or a signature covers.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from typing import Any

from fedsilo.identity import sha256_digest
from fedsilo.protocol import canonical_json

FORMAT = "fedsilo.audit/v1"
GENESIS = "sha256:" + "0" * 64


class RecordKind(StrEnum):
    """What a line of the log is."""

    DECISION = "decision"
    CHECKPOINT = "checkpoint"
    CLOSE = "close"


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 over the record's canonical JSON without its own ``hash`` field."""
    return sha256_digest(canonical_json({k: v for k, v in record.items() if k != "hash"}))


def checkpoint_message(kind: RecordKind, covers_seq: int, chain_head: str) -> bytes:
    """The bytes a checkpoint signs: the format, its kind, and the chain head it vouches for."""
    return canonical_json({"format": FORMAT, "kind": kind.value, "covers_seq": covers_seq, "chain_head": chain_head})


def encode_line(record: dict[str, Any]) -> str:
    """One JSONL line: keys sorted so the file diffs and greps predictably."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"


def rfc3339_now() -> str:
    """The current UTC time as RFC 3339 with microseconds and a ``Z``."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
