"""The ledger's tamper evidence: what a row's digest covers, and the chain's start.

``PrivacyLedger.charge`` (writing) and ``PrivacyLedger.verify`` (reading) both call in
here, so the writer and the verifier cannot drift apart on what a digest covers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedsilo.identity import sha256_digest
from fedsilo.protocol import canonical_json

FORMAT = "fedsilo.privacy-ledger/v1"
# The first row's previous digest: the format's own digest, so a chain of another format
# (the audit log's, say) can never be spliced in front of a ledger.
GENESIS = sha256_digest(FORMAT.encode())


class LedgerIntegrityError(Exception):
    """The ledger's rows do not form the chain they were written as; ``seq`` is the first bad row."""

    def __init__(self, seq: int, message: str) -> None:
        super().__init__(f"privacy ledger row {seq}: {message}")
        self.seq = seq


@dataclass(frozen=True)
class ChainHead:
    """The last row's sequence number and digest; anchor it elsewhere to detect truncation."""

    seq: int
    digest: str


# The stored columns a row's digest covers, in the table's order: all but the digest itself.
DIGESTED_COLUMNS = (
    "seq",
    "silo",
    "job",
    "round",
    "idempotency_key",
    "mechanism",
    "accountant",
    "delta",
    "epsilon_job",
    "epsilon_lifetime",
    "charged_at",
    "prev_digest",
)


def _json_value(value: Any) -> Any:
    # Canonical JSON refuses infinities, and an accountant answers inf for hopeless settings.
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def row_digest(row: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical JSON of a row's ``DIGESTED_COLUMNS`` and the ledger format."""
    document = {"format": FORMAT} | {column: _json_value(row[column]) for column in DIGESTED_COLUMNS}
    return sha256_digest(canonical_json(document))
