"""Streaming SHA-256 in the ``sha256:<hex>`` form every fedsilo digest takes.

Secure aggregation digests a masked payload chunk by chunk on both ends (the silo before
it signs the update metadata, the hub as chunks arrive) without ever joining the chunks
into one buffer.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

DIGEST_PREFIX = "sha256:"


class StreamingDigest:
    """SHA-256 over everything passed to ``update``, in order."""

    __slots__ = ("_hash",)

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, data: ReadableBuffer) -> None:
        """Hash the next bytes (any contiguous buffer, a numpy array included)."""
        self._hash.update(data)

    def raw(self) -> bytes:
        """The 32-byte digest of what was hashed so far."""
        return self._hash.digest()

    def text(self) -> str:
        """``sha256:<hex>`` of what was hashed so far."""
        return DIGEST_PREFIX + self._hash.hexdigest()
