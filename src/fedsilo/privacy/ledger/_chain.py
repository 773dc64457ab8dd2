"""The ledger's tamper evidence: the row type, what a row's digest covers, and the chain's start.

``PrivacyLedger.charge`` (writing) and ``verify_ledger`` (reading) both call in here, so
the writer and the verifier cannot drift apart on what a row is or what a digest covers.
Every row read back is typed as a ``LedgerRow`` (strict: no coercion, bounded numbers,
epsilons that are numbers) and its mechanism parsed through ``strict_json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from fedsilo.audit import SignedHead, TamperedError, TamperKind, sign_head, strict_kind
from fedsilo.identity import SigningKey, sha256_digest
from fedsilo.privacy import AccountantKind, Mechanism, mechanism_from_json
from fedsilo.protocol import MessageError, StrictMessage, canonical_json

FORMAT = "fedsilo.privacy-ledger/v1"
# The first row's previous digest: the format's own digest, so a chain of another format
# (the audit log's, say) can never be spliced in front of a ledger.
GENESIS = sha256_digest(FORMAT.encode())


class LedgerIntegrityError(TamperedError):
    """The ledger is not what its writer wrote: ``kind`` of tampering, ``seq`` the first bad row (0: the file)."""

    def __init__(self, kind: TamperKind, seq: int, message: str, *, table: str = "row") -> None:
        self.seq = seq
        super().__init__(kind, f"privacy ledger {table} {seq}" if seq else "privacy ledger", message)


@dataclass(frozen=True)
class ChainHead:
    """The last row's sequence number and digest; anchor it elsewhere to detect truncation."""

    seq: int
    digest: str

    @classmethod
    def genesis(cls) -> ChainHead:
        """The head of an empty ledger: what the first row follows."""
        return cls(0, GENESIS)

    @classmethod
    def of_last(cls, row: Mapping[str, Any] | None) -> ChainHead:
        """The head a chain's last stored row (``seq``, ``digest``) makes; the genesis head when there is none."""
        return cls.genesis() if row is None else cls(row["seq"], row["digest"])


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
# The charges table's columns: the digested ones and the digest.
CHARGE_COLUMNS = (*DIGESTED_COLUMNS, "digest")


_Text = Annotated[str, Field(max_length=4096)]
_Count = Annotated[int, Field(ge=0, le=2**62)]
# An accountant answers inf for hopeless settings; a NaN or negative epsilon is no epsilon.
_Epsilon = Annotated[float, Field(ge=0, allow_inf_nan=True)]


class LedgerRow(StrictMessage):
    """One row of the ``charges`` table, as stored: what verification and every reader type it as."""

    seq: Annotated[int, Field(ge=1, le=2**62)]
    silo: _Text
    job: _Text
    round: _Count
    idempotency_key: _Text
    mechanism: Annotated[str, Field(max_length=4096)]
    accountant: AccountantKind
    delta: Annotated[float, Field(gt=0, lt=1)]
    epsilon_job: _Epsilon
    epsilon_lifetime: _Epsilon
    charged_at: Annotated[str, Field(max_length=64)]
    prev_digest: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
    digest: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]

    def event(self) -> Mechanism:
        """The row's mechanism, parsed strictly: a tampered one is a ``LedgerIntegrityError`` naming the row."""
        try:
            return mechanism_from_json(self.mechanism)
        except MessageError as error:
            raise LedgerIntegrityError(strict_kind(error), self.seq, f"holds no valid mechanism ({error})") from None
        except ValueError as error:
            raise LedgerIntegrityError(TamperKind.MALFORMED, self.seq, f"holds no valid mechanism ({error})") from None


class CheckpointRow(StrictMessage):
    """One row of the ``checkpoints`` table: the writer's signature over the chain head at ``covers_seq``."""

    covers_seq: Annotated[int, Field(ge=1, le=2**62)]
    chain_head: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
    kind: Literal["checkpoint"]
    key_fingerprint: Annotated[str, Field(max_length=128)]
    signature: Annotated[str, Field(max_length=128)]
    signed_at: Annotated[str, Field(max_length=64)]

    @classmethod
    def sign(cls, key: SigningKey, head: ChainHead, signed_at: str) -> CheckpointRow:
        """The writer's checkpoint over ``head``, as the row to store."""
        signed = sign_head(key, FORMAT, "checkpoint", head.seq, head.digest)
        return cls(
            covers_seq=signed.seq,
            chain_head=signed.hash,
            kind="checkpoint",
            key_fingerprint=signed.key_fingerprint,
            signature=signed.signature,
            signed_at=signed_at,
        )

    def signed_head(self) -> SignedHead:
        """The row as the signed head it is: what ``check_head`` checks and the ledger publishes."""
        return SignedHead.of_checkpoint(FORMAT, self)


CHECKPOINT_COLUMNS = tuple(CheckpointRow.model_fields)


def _json_value(value: Any) -> Any:
    # Canonical JSON refuses infinities, and an accountant answers inf for hopeless settings.
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def row_digest(row: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical JSON of a row's ``DIGESTED_COLUMNS`` and the ledger format."""
    document = {"format": FORMAT} | {column: _json_value(row[column]) for column in DIGESTED_COLUMNS}
    return sha256_digest(canonical_json(document))
