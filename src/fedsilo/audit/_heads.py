"""What every hash-chained evidence file shares: tampering verdicts and signed chain heads.

Two files are evidence an auditor checks offline: the audit log (JSON lines, ``fedsilo.audit``)
and each privacy ledger (SQLite, ``fedsilo.privacy.ledger``). Both are hash chains whose
head is signed at checkpoints, both name what is wrong with one ``TamperKind``, and both
publish their newest signed head (``SignedHead``) outside the file, in the FederatedJob's
status and the model lineage, so that a file cut back to an earlier signed checkpoint, which
still verifies on its own, is caught when checked against the published head.

This module is the one place that builds and checks a checkpoint's signature; the audit log
and the ledger call ``sign_head`` when they write and ``check_head`` when they verify.
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol, Self

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from fedsilo.identity import SignatureError, SigningKey, VerifyKey
from fedsilo.protocol import MessageError, StrictMessage, canonical_json, strict_json


class TamperKind(StrEnum):
    """How an evidence file departs from what its writer wrote; the first word of every verdict."""

    EDITED = "edited"
    DROPPED = "dropped"
    INSERTED = "inserted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"
    SIGNATURE = "signature"
    WRONG_KEY = "wrong_key"
    # A record that is not a record of the format: not JSON, wrong types, missing or extra fields.
    MALFORMED = "malformed"
    # The same key twice in one record: readers that keep the first or the last see different records.
    DUPLICATE_KEY = "duplicate_key"
    NOT_FINITE = "not_finite"
    TOO_DEEP = "too_deep"
    ENCODING = "encoding"
    OVERSIZED = "oversized"
    # Rows no signed checkpoint covers, when a key is given to check them with.
    UNSIGNED = "unsigned"
    # The file ends before the head published outside it: cut back to an earlier checkpoint.
    ROLLED_BACK = "rolled_back"
    # The file holds another record where the published head says which record stands.
    FORKED = "forked"


# What ``strict_json`` says, as the tampering it shows. Every phrase is pinned by the tamper
# corpora's tests, so a reworded refusal shows up there rather than as a vaguer verdict here.
_STRICT_PHRASES = (
    ("duplicate key", TamperKind.DUPLICATE_KEY),
    ("is not a JSON number", TamperKind.NOT_FINITE),
    ("overflows a float", TamperKind.NOT_FINITE),
    ("nested deeper", TamperKind.TOO_DEEP),
    ("not UTF-8", TamperKind.ENCODING),
    ("digits, more than", TamperKind.OVERSIZED),
    ("bytes, more than", TamperKind.OVERSIZED),
    # A typed field's bound: an integer or number far beyond anything the writer writes.
    ("less than or equal to", TamperKind.OVERSIZED),
    # Torn or overwritten: the bytes were changed so far that they are no JSON at all.
    ("not JSON", TamperKind.EDITED),
)


def strict_kind(error: MessageError) -> TamperKind:
    """The kind of tampering a refusal of ``strict_json`` or ``StrictMessage`` shows."""
    text = str(error)
    return next((kind for phrase, kind in _STRICT_PHRASES if phrase in text), TamperKind.MALFORMED)


class TamperedError(Exception):
    """An evidence file fails verification: ``kind`` of tampering at ``place`` (record and line, or row)."""

    def __init__(self, kind: TamperKind, place: str | None, message: str) -> None:
        self.kind = kind
        self.place = place
        self.message = message
        super().__init__(f"{kind.value}" + (f" at {place}" if place else "") + f": {message}")


Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
SeqNumber = Annotated[int, Field(ge=0, le=2**62)]


class Checkpoint(Protocol):
    """A stored checkpoint of any evidence format (an audit record, a ledger row): a signed head's fields."""

    @property
    def kind(self) -> str: ...

    @property
    def covers_seq(self) -> int: ...

    @property
    def chain_head(self) -> str: ...

    @property
    def key_fingerprint(self) -> str: ...

    @property
    def signature(self) -> str: ...


class SignedHead(StrictMessage):
    """A chain's head as a checkpoint signed it: what to publish outside the file.

    ``seq`` and ``hash`` are the last record the checkpoint vouches for; the signature is over
    ``message()``, so anyone with the writer's public key can check a published head without
    the file, and a head cannot be forged to accuse an honest file.
    """

    # camelCase like every status field, so a head copied from ``kubectl get -o json`` is a valid ``--head``.
    model_config = StrictMessage.model_config | ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    format: Annotated[str, Field(min_length=1, max_length=64)]
    kind: Annotated[str, Field(min_length=1, max_length=32)]
    seq: SeqNumber
    hash: Digest
    key_fingerprint: Annotated[str, Field(max_length=128)]
    signature: Annotated[str, Field(max_length=128)]

    max_bytes = 4096

    def message(self) -> bytes:
        """The bytes the signature covers: format, checkpoint kind and the head it vouches for."""
        return checkpoint_message(self.format, self.kind, self.seq, self.hash)

    def to_json(self) -> dict[str, Any]:
        """The head as a JSON object, as status fields and lineage store it."""
        return self.model_dump(mode="json")

    @classmethod
    def of_checkpoint(cls, format_name: str, checkpoint: Checkpoint) -> Self:
        """The head a stored checkpoint of a ``format_name`` file signed, to check or to publish."""
        return cls(
            format=format_name,
            kind=checkpoint.kind,
            seq=checkpoint.covers_seq,
            hash=checkpoint.chain_head,
            key_fingerprint=checkpoint.key_fingerprint,
            signature=checkpoint.signature,
        )

    @classmethod
    def load(cls, text: str) -> Self:
        """A head given on a command line: the JSON object inline, or a file holding it."""
        path = Path(text)
        if not text.lstrip().startswith("{") and path.is_file():
            return cls.parse(path.read_bytes())
        return cls.parse(text)


def checkpoint_message(format_name: str, kind: str, covers_seq: int, chain_head: str) -> bytes:
    """The bytes a checkpoint signs, for every evidence format alike."""
    return canonical_json({"format": format_name, "kind": kind, "covers_seq": covers_seq, "chain_head": chain_head})


def sign_head(key: SigningKey, format_name: str, kind: str, seq: int, chain_head: str) -> SignedHead:
    """Sign that record ``seq`` of a ``format_name`` chain hashes to ``chain_head``."""
    signature = key.sign(checkpoint_message(format_name, kind, seq, chain_head))
    return SignedHead(
        format=format_name,
        kind=kind,
        seq=seq,
        hash=chain_head,
        key_fingerprint=key.public_key.fingerprint(),
        signature=base64.b64encode(signature).decode("ascii"),
    )


def check_head(head: SignedHead, key: VerifyKey, place: str | None, rewritten: str) -> None:
    """Raise ``TamperedError`` unless ``key`` signed ``head``; ``rewritten`` says what a bad signature means here."""
    if head.key_fingerprint != key.fingerprint():
        raise TamperedError(
            TamperKind.WRONG_KEY,
            place,
            f"signed by {head.key_fingerprint}, the key given is {key.fingerprint()}",
        )
    try:
        key.verify(base64.b64decode(head.signature, validate=True), head.message())
    except (SignatureError, binascii.Error, ValueError) as error:
        raise TamperedError(
            TamperKind.SIGNATURE, place, f"the checkpoint's signature does not verify: {rewritten}, or it is forged"
        ) from error


def parse_record(data: bytes, what: str, place: str) -> Any:
    """One record's bytes through ``strict_json``; a refusal becomes a ``TamperedError`` naming its kind."""
    try:
        return strict_json(data, what=what)
    except MessageError as error:
        raise TamperedError(strict_kind(error), place, str(error)) from None


def check_against_published(
    head: SignedHead, key: VerifyKey, hash_at: dict[int, str], last_seq: int, *, unit: str
) -> None:
    """Raise unless a file whose records ``1..last_seq`` hash as ``hash_at`` says still holds ``head``.

    ``head`` was published outside the file when it was signed; a file that ends before it
    was cut back (``ROLLED_BACK``), one that holds another record there was rewritten
    (``FORKED``). ``unit`` names a place in this file (``record``, ``row``).
    """
    check_head(head, key, "the published head", "the published head was altered")
    if head.seq > last_seq:
        raise TamperedError(
            TamperKind.ROLLED_BACK,
            f"{unit} {last_seq}",
            f"the file ends at {unit} {last_seq}, but its published head is {unit} {head.seq} ({head.hash}): "
            "it was cut back to an earlier signed checkpoint",
        )
    if head.seq and hash_at.get(head.seq) != head.hash:
        raise TamperedError(
            TamperKind.FORKED,
            f"{unit} {head.seq}",
            f"the published head says {unit} {head.seq} hashes to {head.hash}, the file's hashes to "
            f"{hash_at.get(head.seq)}: the file was rewritten after the head was published",
        )
