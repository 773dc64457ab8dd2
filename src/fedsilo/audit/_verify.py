"""Offline verification of an audit log, for auditors (``fedsilo audit verify``) and for resuming.

One pass over the file, opened read-only: every line must parse strictly into a typed
record (``parse_line``), every record's hash must match its content, sequence numbers must
run 1, 2, 3, ..., each record must carry its predecessor's hash, every checkpoint must be
signed by the aggregator's key over the chain head it names, and the file must end with a
signed ``close`` checkpoint. The first violation raises ``AuditVerificationError`` with the
kind of tampering and the record (sequence number and line) where it shows.

What the file cannot show on its own: a log cut back to an *earlier* close looks complete.
The newest signed head (``VerifyReport.signed_head``) is published outside the file (the
FederatedJob's status, the model lineage); ``verify_audit_log(..., published=head)``
checks the file against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedsilo.identity import VerifyKey

from ._chain import (
    FORMAT,
    GENESIS,
    CheckpointRecord,
    DecisionRecord,
    OperationRecord,
    RecordKind,
    parse_line,
    record_hash,
)
from ._heads import SignedHead, TamperedError, TamperKind, check_against_published, check_head


class AuditVerificationError(TamperedError):
    """The log fails verification: ``kind`` of tampering, at record ``seq`` (``line`` in the file)."""

    def __init__(self, kind: TamperKind, seq: int | None, message: str, *, line: int | None = None) -> None:
        self.seq = seq
        self.line = line
        where = [f"record {seq}"] if seq is not None else []
        where += [f"line {line}"] if line is not None else []
        super().__init__(kind, ", ".join(where) or None, message)

    @classmethod
    def at_line(cls, error: TamperedError, seq: int | None, line: int) -> AuditVerificationError:
        """A verdict of the shared checks (parsing, signatures) placed in this log."""
        return cls(error.kind, seq, error.message, line=line)


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
    # The newest checkpoint's signed head (None before the first checkpoint): what to publish.
    signed_head: SignedHead | None = None


@dataclass(frozen=True)
class LogScan:
    """A verified prefix of a log: its report, and whether a ``close`` checkpoint ends it."""

    report: VerifyReport
    sealed: bool
    signed_through: int
    hashes: dict[int, str]


def read_lines(path: Path) -> list[bytes]:
    """The log's lines as bytes, read without writing (a final newline ends the last line)."""
    with path.open("rb") as file:
        data = file.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _seq_of(line: bytes, number: int) -> int | None:
    try:
        return parse_line(line, number)[1].seq
    except TamperedError:
        return None


def _check_checkpoint(record: CheckpointRecord, head: str, key: VerifyKey, signed_through: int, number: int) -> None:
    seq = record.seq
    rewritten = f"records {signed_through + 1}..{seq - 1} were changed after they were signed and the chain re-hashed"
    if record.key_fingerprint != key.fingerprint():
        raise AuditVerificationError(
            TamperKind.WRONG_KEY,
            seq,
            f"the log was signed by {record.key_fingerprint}, the key given is {key.fingerprint()}",
            line=number,
        )
    if record.covers_seq != seq - 1 or record.chain_head != head:
        raise AuditVerificationError(
            TamperKind.SIGNATURE,
            seq,
            f"the checkpoint vouches for record {record.covers_seq} with hash {record.chain_head}, "
            f"but record {seq - 1} hashes to {head}: {rewritten}",
            line=number,
        )
    try:
        check_head(SignedHead.of_checkpoint(FORMAT, record), key, None, rewritten)
    except TamperedError as error:
        raise AuditVerificationError.at_line(error, seq, number) from None


def _out_of_sequence(seq: int, expected: int, lines: list[bytes], number: int) -> AuditVerificationError:
    if seq > expected and any(_seq_of(later, at) == expected for at, later in enumerate(lines[number:], number + 1)):
        return AuditVerificationError(
            TamperKind.REORDERED, seq, f"record {seq} stands where record {expected} belongs", line=number
        )
    if seq > expected:
        missing = str(expected) if seq == expected + 1 else f"{expected}..{seq - 1}"
        return AuditVerificationError(
            TamperKind.DROPPED, expected, f"record(s) {missing} are missing before record {seq}", line=number
        )
    return AuditVerificationError(
        TamperKind.INSERTED, seq, f"record {seq} is out of sequence where {expected} belongs", line=number
    )


def scan_audit_log(path: Path, key: VerifyKey) -> LogScan:
    """Verify every record of ``path``; raise on the first problem. An unsealed end is reported, not raised."""
    lines = read_lines(path)
    head, expected, signed_through = GENESIS, 1, 0
    lines_of: dict[int, int] = {}
    hashes: dict[int, str] = {}
    decisions = denied = checkpoints = 0
    jobs: set[str] = set()
    times: list[str] = []
    last_kind: RecordKind | None = None
    signed: SignedHead | None = None
    for number, line in enumerate(lines, start=1):
        try:
            document, record = parse_line(line, number)
        except TamperedError as error:
            raise AuditVerificationError.at_line(error, None, number) from None
        seq = record.seq
        if record.hash != record_hash(document):
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
            raise _out_of_sequence(seq, expected, lines, number)
        if record.prev_hash != head:
            raise AuditVerificationError(
                TamperKind.EDITED,
                seq - 1,
                f"record {seq} does not carry the hash of record {seq - 1}: that record was changed and re-hashed, "
                "or replaced",
                line=number - 1,
            )
        if isinstance(record, DecisionRecord):
            decisions += 1
            denied += record.decision != "allow"
            jobs.add(record.job)
            times.append(record.time)
        elif isinstance(record, OperationRecord):
            jobs.add(record.job)
            times.append(record.time)
        else:
            _check_checkpoint(record, head, key, signed_through, number)
            checkpoints += 1
            signed_through = seq
            signed = SignedHead.of_checkpoint(FORMAT, record)
        lines_of[seq] = number
        hashes[seq] = record.hash
        head, expected, last_kind = record.hash, seq + 1, RecordKind(record.kind)
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
        signed_head=signed,
    )
    return LogScan(report, last_kind is RecordKind.CLOSE, signed_through, hashes)


def verify_audit_log(path: Path, key: VerifyKey, *, published: SignedHead | None = None) -> VerifyReport:
    """Verify ``path`` against the aggregator's public ``key``; raise ``AuditVerificationError`` on any tampering.

    ``published`` is a head published outside the file (job status, lineage): the log must
    still hold it, or it was cut back or rewritten since.
    """
    scan = scan_audit_log(path, key)
    last = scan.report.head_seq
    if published is not None:
        if published.format != FORMAT:
            raise AuditVerificationError(
                TamperKind.MALFORMED, None, f"the published head is of {published.format}, not {FORMAT}"
            )
        try:
            check_against_published(published, key, scan.hashes, last, unit="record")
        except TamperedError as error:
            raise AuditVerificationError(error.kind, min(published.seq, last) or None, error.message) from None
    if scan.sealed:
        return scan.report
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
