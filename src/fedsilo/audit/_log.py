"""The audit log: one hash-chained record per policy decision, checkpointed with a signature.

The aggregator appends a record for every decision (``PolicyGate`` does it before the
decision takes effect). Each record carries the previous record's hash; every
``checkpoint_every`` records, and when the log is closed, a checkpoint record signs the
chain head with the aggregator's Ed25519 key. An auditor verifies the whole file offline
with the public key (``fedsilo audit verify``): an edited, dropped, inserted or reordered
record, a truncated tail, or a wrong key is found and named.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Any

from fedsilo.identity import SigningKey, sha256_digest
from fedsilo.protocol import canonical_json

GENESIS = "sha256:" + "0" * 64


def record_hash(record: dict[str, Any]) -> str:
    """The hash of a record: SHA-256 over its canonical JSON without the ``hash`` field."""
    return sha256_digest(canonical_json({k: v for k, v in record.items() if k != "hash"}))


def checkpoint_message(seq: int, head: str, kind: str) -> bytes:
    """The bytes a checkpoint signs: what it covers, unambiguously."""
    return canonical_json({"kind": kind, "seq": seq, "chain_head": head, "domain": "fedsilo.audit/v1"})


class AuditLog:
    """An append-only JSONL file of decision records. Safe to share between threads."""

    def __init__(self, path: Path, signing_key: SigningKey, *, checkpoint_every: int = 32) -> None:
        self.path = path
        self._key = signing_key
        self._every = checkpoint_every
        self._lock = threading.Lock()
        self._seq, self._head = self._resume()
        self._since_checkpoint = 0

    def _resume(self) -> tuple[int, str]:
        """Continue an existing chain: the last record's sequence number and hash."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return 0, GENESIS
        last = self.path.read_text(encoding="utf-8").splitlines()[-1]
        record = json.loads(last)
        return int(record["seq"]), str(record["hash"])

    def _append(self, body: dict[str, Any]) -> dict[str, Any]:
        record = {"seq": self._seq + 1, "prev_hash": self._head, **body}
        record["hash"] = record_hash(record)
        line = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self._seq, self._head = record["seq"], record["hash"]
        return record

    def _checkpoint(self, kind: str) -> None:
        signature = self._key.sign(checkpoint_message(self._seq, self._head, kind))
        self._append(
            {
                "kind": kind,
                "covers_seq": self._seq,
                "chain_head": self._head,
                "signature": base64.b64encode(signature).decode(),
            }
        )
        self._since_checkpoint = 0

    def record_decision(
        self,
        *,
        job: str,
        round_number: int,
        silo: str,
        payload_digest: str,
        policy_input: dict[str, Any],
        allow: bool,
        reasons: list[str],
        policy_revision: str,
        engine: str,
    ) -> dict[str, Any]:
        """Append one decision (with its full input, so it can be re-run offline)."""
        with self._lock:
            record = self._append(
                {
                    "kind": "decision",
                    "time": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
                    "job": job,
                    "round": round_number,
                    "silo": silo,
                    "payload_digest": payload_digest,
                    "input_digest": sha256_digest(canonical_json(policy_input)),
                    "input": policy_input,
                    "decision": "allow" if allow else "deny",
                    "reasons": reasons,
                    "policy_revision": policy_revision,
                    "engine": engine,
                }
            )
            self._since_checkpoint += 1
            if self._since_checkpoint >= self._every:
                self._checkpoint("checkpoint")
            return record

    def close(self) -> None:
        """Seal the log: a signed closing checkpoint, so truncation is detectable."""
        with self._lock:
            self._checkpoint("close")
