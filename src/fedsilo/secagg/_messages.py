"""The secure-aggregation messages and their canonical bytes.

Each message is a JSON object with a ``type`` and base64 byte fields, serialized
canonically (sorted keys, no spaces) so it can be signed and relayed as opaque bytes in
protobuf. Parsing is strict: a wrong type, a missing or extra field is a ``SecAggError``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from fedsilo.protocol import canonical_json


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


def load(data: bytes, kind: str, keys: set[str]) -> dict[str, Any]:
    """Parse a message of ``kind`` with exactly ``keys`` (besides ``type``)."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SecAggError(f"{kind} message is not JSON") from error
    if not isinstance(document, dict) or document.get("type") != kind:
        raise SecAggError(f"expected a {kind} message")
    present = set(document) - {"type"}
    if present != keys:
        raise SecAggError(f"{kind} message has fields {sorted(present)}, expected {sorted(keys)}")
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
        if not isinstance(document, dict) or set(document) != {"silo", "encryption_key", "masking_key", "signature"}:
            raise SecAggError("malformed key advertisement")
        if not isinstance(document["silo"], str):
            raise SecAggError("key advertisement names no silo")
        return cls(
            document["silo"],
            unb64(document["encryption_key"], "encryption key"),
            unb64(document["masking_key"], "masking key"),
            unb64(document["signature"], "advertisement signature"),
        )
