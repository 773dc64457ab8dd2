"""The audit log's on-disk format: the record types, record hashing, the chain's start, what a checkpoint signs.

``AuditLog`` (writing), ``verify_audit_log`` and ``read_decisions`` (reading) all call in
here, so the writer and the readers cannot drift apart on what a record is, what its hash
covers or what a signature covers. Every line is read through ``strict_json`` and then
typed as a ``DecisionRecord``, ``CheckpointRecord`` or ``OperationRecord`` (``parse_line``); nothing else reads
the file.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from fedsilo.identity import sha256_digest
from fedsilo.protocol import MessageError, StrictMessage, canonical_json

from ._heads import Digest, SeqNumber, TamperedError, TamperKind, parse_record, strict_kind

FORMAT = "fedsilo.audit/v1"
#: The decisions about the job itself an ``operation`` record may name: the one list the writers
#: (``AuditLog.record_operation``, typed with it) and the reader (``OperationRecord``) share, so an
#: operation the hub writes is one ``fedsilo audit verify`` accepts.
AuditOperation = Literal["resume", "rollback", "unlearn", "key_ceremony", "statistics", "leave", "neighbour_graph"]
GENESIS = "sha256:" + "0" * 64


class RecordKind(StrEnum):
    """What a line of the log is."""

    DECISION = "decision"
    CHECKPOINT = "checkpoint"
    CLOSE = "close"
    OPERATION = "operation"


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 over the record's canonical JSON without its own ``hash`` field."""
    return sha256_digest(canonical_json({k: v for k, v in record.items() if k != "hash"}))


_Text = Annotated[str, Field(max_length=4096)]


class _Record(StrictMessage):
    """What every line carries: its place in the chain."""

    seq: Annotated[int, Field(ge=1, le=2**62)]
    prev_hash: Digest
    hash: Digest
    time: Annotated[str, Field(max_length=64)]


class DecisionRecord(_Record):
    """One policy decision, with the policy input it was made on."""

    kind: Literal["decision"]
    job: _Text
    round: SeqNumber
    silo: _Text
    payload_digest: _Text
    input_digest: Digest
    input: dict[str, Any]
    decision: Literal["allow", "deny"]
    reasons: tuple[_Text, ...]
    policy_revision: _Text
    engine: _Text


class CheckpointRecord(_Record):
    """A signature over the chain head: every ``checkpoint_every`` decisions, and a ``close`` at the end."""

    kind: Literal["checkpoint", "close"]
    covers_seq: SeqNumber
    chain_head: Digest
    key_fingerprint: Annotated[str, Field(max_length=128)]
    signature: Annotated[str, Field(max_length=128)]


class OperationRecord(_Record):
    """A decision about the job itself, not about one update: resume, rollback, unlearn, key ceremony, statistics, leave, a round's masking graph.

    ``round`` is the last completed round the job goes on from (a key ceremony: the round
    whose joint key it made; the statistics phase: 0; a leave: the round the silo left in);
    ``details`` says what the operation kept and discarded (rounds, update digests) or, for a
    key ceremony, the joint key's id and each silo's signed share's digest, or for the
    statistics phase the digests of what it released and the silos left out, or for a leave
    the silo and whether its update was in; ``reason`` why it was asked (statistics: released
    or failed; a leave: the silo's own signed reason; a neighbour graph: the guarantee its degree gives).
    """

    kind: Literal["operation"]
    job: _Text
    operation: AuditOperation
    round: SeqNumber
    reason: _Text
    details: dict[str, Any]


AuditRecord = DecisionRecord | CheckpointRecord | OperationRecord


def parse_line(line: bytes, number: int) -> tuple[dict[str, Any], AuditRecord]:
    """Line ``number`` as its JSON object (what the hash covers) and its typed record.

    ``TamperedError`` names the kind (duplicate key, NaN, depth, encoding, a missing or
    extra field, a wrong type) and the line; never another exception.
    """
    place = f"line {number}"
    document = parse_record(line, "audit record", place)
    if not isinstance(document, dict):
        raise TamperedError(TamperKind.MALFORMED, place, "not a JSON object")
    kind = document.get("kind")
    models: dict[str, type[AuditRecord]] = {
        RecordKind.DECISION.value: DecisionRecord,
        RecordKind.OPERATION.value: OperationRecord,
    }
    model = models.get(str(kind), CheckpointRecord)
    if kind not in {k.value for k in RecordKind}:
        raise TamperedError(TamperKind.MALFORMED, place, f"unknown record kind {str(kind)[:40]!r}")
    try:
        return document, model.from_document(document)
    except MessageError as error:
        raise TamperedError(strict_kind(error), place, str(error)) from None


def encode_line(record: dict[str, Any]) -> str:
    """One JSONL line: keys sorted so the file diffs and greps predictably."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"


def rfc3339_now() -> str:
    """The current UTC time as RFC 3339 with microseconds and a ``Z``."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
