"""The secure-aggregation messages and their canonical bytes.

Each message is a JSON object with a ``type`` and base64 byte fields, serialized
canonically (sorted keys, no spaces) so it can be signed and relayed as opaque bytes in
protobuf. Parsing goes through ``fedsilo.protocol.StrictMessage`` (one model per kind,
below): duplicate keys, a wrong type, a missing or extra field, a name that is no silo's,
and base64 text or maps longer than any honest message are a ``SecAggError``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import Field

from fedsilo.protocol import MessageError, ObjectName, StrictMessage, canonical_json

# Most silos in one job, and base64 lengths no honest field comes near (an X25519 key is 44
# characters, an Ed25519 signature 88, a Shamir share and a sealed pair of shares a few hundred).
MAX_SILOS: Final = 1000
_Key = Annotated[str, Field(max_length=64)]
_Signature = Annotated[str, Field(max_length=128)]
_Share = Annotated[str, Field(max_length=1024)]
_Sealed = Annotated[str, Field(max_length=4096)]
_Names = Annotated[list[ObjectName], Field(max_length=MAX_SILOS)]


class SecAggError(Exception):
    """A protocol violation; ``reason`` says which check failed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class SecAggAbort(SecAggError):
    """Too few silos remain to finish the protocol safely (fewer than the threshold)."""


def b64(data: bytes) -> str:
    """Base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, what: str) -> bytes:
    """Bytes from base64 text; ``SecAggError`` naming ``what`` if it is not."""
    if not isinstance(text, str):
        raise SecAggError(f"{what} is not base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise SecAggError(f"{what} is not valid base64") from error


def dump(kind: str, fields: dict[str, Any]) -> bytes:
    """Canonical bytes of a message."""
    return canonical_json({"type": kind, **fields})


class _AdvertDocument(StrictMessage):
    silo: ObjectName
    encryption_key: _Key
    masking_key: _Key
    signature: _Signature


class _Advertise(StrictMessage):
    type: Literal["advertise"]
    advert: _AdvertDocument


class _Adverts(StrictMessage):
    type: Literal["adverts"]
    adverts: Annotated[list[_AdvertDocument], Field(max_length=MAX_SILOS)]


class _Shares(StrictMessage):
    type: Literal["shares"]
    silo: ObjectName
    ciphertexts: Annotated[dict[ObjectName, _Sealed], Field(max_length=MAX_SILOS)]


class _Delivery(StrictMessage):
    type: Literal["delivery"]
    ciphertexts: Annotated[dict[ObjectName, _Sealed], Field(max_length=MAX_SILOS)]


class _Unmask(StrictMessage):
    type: Literal["unmask"]
    survivors: _Names
    dropped: _Names


class _Reveal(StrictMessage):
    type: Literal["reveal"]
    silo: ObjectName
    seed_shares: Annotated[dict[ObjectName, _Share], Field(max_length=MAX_SILOS)]
    key_shares: Annotated[dict[ObjectName, _Share], Field(max_length=MAX_SILOS)]


class _SealedShare(StrictMessage):
    type: Literal["share"]
    sender: ObjectName = Field(alias="from")
    to: ObjectName
    seed_share: _Share
    key_share: _Share


_KINDS: Final[dict[str, type[StrictMessage]]] = {
    "advertise": _Advertise,
    "adverts": _Adverts,
    "shares": _Shares,
    "delivery": _Delivery,
    "unmask": _Unmask,
    "reveal": _Reveal,
    "share": _SealedShare,
}


def load(data: bytes, kind: str) -> dict[str, Any]:
    """Parse a message of ``kind`` strictly; its JSON object, or ``SecAggError`` naming what is wrong."""
    try:
        message = _KINDS[kind].parse(data)
    except MessageError as error:
        raise SecAggError(f"malformed {kind} message: {error}") from None
    document: dict[str, Any] = message.model_dump(mode="json", by_alias=True)
    return document


@dataclass(frozen=True)
class Advert:
    """A silo's two X25519 public keys for this round, signed with its Ed25519 identity key."""

    silo: str
    encryption_key: bytes
    masking_key: bytes
    signature: bytes

    @staticmethod
    def signed_bytes(job: str, round_number: int, silo: str, encryption_key: bytes, masking_key: bytes) -> bytes:
        """What the signature covers: the keys bound to job, round and silo."""
        return canonical_json(
            {
                "domain": "fedsilo.secagg.advertise/v1",
                "job": job,
                "round": round_number,
                "silo": silo,
                "encryption_key": b64(encryption_key),
                "masking_key": b64(masking_key),
            }
        )

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {
            "silo": self.silo,
            "encryption_key": b64(self.encryption_key),
            "masking_key": b64(self.masking_key),
            "signature": b64(self.signature),
        }

    @classmethod
    def from_dict(cls, document: Any) -> Advert:
        """Parse the JSON form strictly."""
        try:
            _AdvertDocument.from_document(document)
        except MessageError as error:
            raise SecAggError(f"malformed key advertisement: {error}") from None
        return cls(
            document["silo"],
            unb64(document["encryption_key"], "encryption key"),
            unb64(document["masking_key"], "masking key"),
            unb64(document["signature"], "advertisement signature"),
        )
