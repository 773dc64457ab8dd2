"""The audit log: one hash-chained record per policy decision, checkpointed with a signature.

``fedsilo.policy.PolicyGate`` appends a record for every decision before the decision takes
effect. Each record carries the previous record's hash; every ``checkpoint_every``
decisions, and when the log is closed, a checkpoint record signs the chain head with the
aggregator's Ed25519 key. An auditor verifies the file offline with the public key
(``verify_audit_log``): an edited, dropped, inserted or reordered record, a truncated tail,
or a wrong key is found and named.

A decision record stores the whole policy input beside its digest, so an auditor can re-run
the policy on exactly what the aggregator saw (``fedsilo.policy.replay_audit_log``).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from fedsilo.identity import SigningKey, sha256_digest
from fedsilo.protocol import canonical_json

from ._chain import FORMAT, GENESIS, AuditOperation, RecordKind, encode_line, record_hash, rfc3339_now
from ._heads import SignedHead, TamperedError, check_against_published, sign_head
from ._verify import AuditVerificationError, scan_audit_log


class AuditLogClosed(RuntimeError):
    """A decision was offered to a log that is already sealed."""


class AuditLog:
    """An append-only JSONL file of decision records, for one writer. Safe to share between threads.

    Opening an existing log verifies it first and continues its chain; a tampered or
    foreign log (other key) raises ``AuditVerificationError`` instead of being extended.
    Another process holding the same file open for writing raises ``BlockingIOError``.
    """

    def __init__(self, path: Path, signing_key: SigningKey, *, checkpoint_every: int = 32) -> None:
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1, not {checkpoint_every}")
        self.path = path
        self._key = signing_key
        self._every = checkpoint_every
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            # Two writers would fork the chain; the lock lasts as long as the descriptor.
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._seq, self._head = 0, GENESIS
            self._signed: SignedHead | None = None
            if path.stat().st_size:
                report = scan_audit_log(path, signing_key.public_key).report
                self._seq, self._head, self._signed = report.head_seq, report.head_hash, report.signed_head
        except BaseException:
            os.close(self._fd)
            raise
        self._since_checkpoint = 0

    @property
    def head(self) -> tuple[int, str]:
        """The last record's sequence number and hash: what to anchor outside the log."""
        with self._lock:
            return self._seq, self._head

    @property
    def signed_head(self) -> SignedHead | None:
        """The newest checkpoint's signed head: what to publish outside the file (job status, lineage)."""
        with self._lock:
            return self._signed

    def _append(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._fd is None:
            raise AuditLogClosed(f"{self.path} is closed")
        record = {"seq": self._seq + 1, "prev_hash": self._head, **body}
        record["hash"] = record_hash(record)
        os.write(self._fd, encode_line(record).encode("utf-8"))
        # The decision must be on disk before the update it admits touches the aggregate.
        os.fsync(self._fd)
        self._seq, self._head = record["seq"], record["hash"]
        return record

    def _checkpoint(self, kind: RecordKind) -> SignedHead:
        signed = sign_head(self._key, FORMAT, kind.value, self._seq, self._head)
        self._append(
            {
                "kind": kind.value,
                "time": rfc3339_now(),
                "covers_seq": signed.seq,
                "chain_head": signed.hash,
                "key_fingerprint": signed.key_fingerprint,
                "signature": signed.signature,
            }
        )
        self._signed = signed
        self._since_checkpoint = 0
        return signed

    def checkpoint(self) -> SignedHead:
        """Sign the chain head now (unless the last record already is a checkpoint) and return the signed head.

        The aggregator calls this when a round closes, so the round's lineage and the job's
        status carry a signed head covering every decision of the round.
        """
        with self._lock:
            if self._signed is not None and self._signed.seq == self._seq - 1:
                return self._signed
            return self._checkpoint(RecordKind.CHECKPOINT)

    def require_head(self, published: SignedHead) -> None:
        """Raise ``AuditVerificationError`` unless this log still holds ``published`` (a head signed earlier).

        A resumed hub checks the head its checkpoint recorded: a log cut back or rewritten
        since the round closed must not be extended as if nothing happened.
        """
        with self._lock:
            scan = scan_audit_log(self.path, self._key.public_key)
        try:
            check_against_published(published, self._key.public_key, scan.hashes, scan.report.head_seq, unit="record")
        except TamperedError as error:
            raise AuditVerificationError(error.kind, published.seq or None, error.message) from None

    def record_decision(
        self,
        *,
        job: str,
        round_number: int,
        silo: str,
        payload_digest: str,
        policy_input: Mapping[str, Any],
        allow: bool,
        reasons: Sequence[str],
        policy_revision: str,
        engine: str,
    ) -> dict[str, Any]:
        """Append one decision, with its full policy input, durably; the record as written."""
        with self._lock:
            record = self._append(
                {
                    "kind": RecordKind.DECISION.value,
                    "time": rfc3339_now(),
                    "job": job,
                    "round": round_number,
                    "silo": silo,
                    "payload_digest": payload_digest,
                    "input_digest": sha256_digest(canonical_json(policy_input)),
                    "input": dict(policy_input),
                    "decision": "allow" if allow else "deny",
                    "reasons": list(reasons),
                    "policy_revision": policy_revision,
                    "engine": engine,
                }
            )
            self._since_checkpoint += 1
            if self._since_checkpoint >= self._every:
                self._checkpoint(RecordKind.CHECKPOINT)
            return record

    def record_operation(
        self, *, job: str, operation: AuditOperation, round_number: int, reason: str, details: Mapping[str, Any]
    ) -> SignedHead:
        """Append a decision about the job itself (resume, rollback, unlearn) and sign the head over it.

        Signed at once: such a decision changes what every later record means, so the head
        that vouches for it is published (by the caller) before anything acts on it.
        """
        with self._lock:
            self._append(
                {
                    "kind": RecordKind.OPERATION.value,
                    "time": rfc3339_now(),
                    "job": job,
                    "operation": operation,
                    "round": round_number,
                    "reason": reason,
                    "details": dict(details),
                }
            )
            return self._checkpoint(RecordKind.CHECKPOINT)

    def close(self) -> None:
        """Seal the log with a signed closing checkpoint, so truncation is detectable. Idempotent."""
        with self._lock:
            if self._fd is None:
                return
            try:
                self._checkpoint(RecordKind.CLOSE)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
