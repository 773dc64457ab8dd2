"""The binary framing every secure-aggregation message uses: strict, length-prefixed, no pickle.

``_messages`` builds each message's ``to_bytes``/``from_bytes`` from ``Writer`` and
``Reader``. A frame starts with a 4-byte magic, a version and a message kind; integers
are big-endian and fixed-width, byte strings and texts carry their length, lists their
count. ``Reader`` refuses truncated frames, trailing bytes, a wrong kind and any length
beyond the caller's bound, each as ``MalformedMessage``.
"""

from __future__ import annotations

from enum import IntEnum

from ._errors import MalformedMessage

_MAGIC = b"FSSA"
_VERSION = 1
# Silo and job names are DNS names: far below this.
MAX_TEXT_BYTES = 253


class Kind(IntEnum):
    """Which message a frame holds."""

    KEY_ADVERTISEMENT = 1
    KEY_BROADCAST = 2
    SHARE_PLAINTEXT = 3
    SHARE_KEYS = 4
    SHARE_DELIVERY = 5
    MASKED_CHUNK = 6
    UNMASK_REQUEST = 7
    SURVIVOR_CONFIRMATION = 8
    CONFIRMATIONS = 9
    UNMASK_RESPONSE = 10


class Writer:
    """Builds one frame."""

    __slots__ = ("_parts",)

    def __init__(self, kind: Kind) -> None:
        self._parts: list[bytes | memoryview] = [_MAGIC, bytes((_VERSION, kind))]

    def u16(self, value: int) -> None:
        """An integer in 0 .. 2^16-1."""
        self._parts.append(value.to_bytes(2, "big"))

    def u32(self, value: int) -> None:
        """An integer in 0 .. 2^32-1."""
        self._parts.append(value.to_bytes(4, "big"))

    def u64(self, value: int) -> None:
        """An integer in 0 .. 2^64-1."""
        self._parts.append(value.to_bytes(8, "big"))

    def fixed(self, data: bytes | memoryview) -> None:
        """Bytes whose length both ends know (keys, signatures, a chunk's words), not copied until ``to_bytes``."""
        self._parts.append(data)

    def blob(self, data: bytes) -> None:
        """Bytes with a 32-bit length."""
        self.u32(len(data))
        self._parts.append(data)

    def text(self, value: str) -> None:
        """UTF-8 text with a 16-bit length."""
        raw = value.encode()
        if len(raw) > MAX_TEXT_BYTES:
            raise MalformedMessage(f"text field of {len(raw)} bytes is longer than {MAX_TEXT_BYTES}")
        self.u16(len(raw))
        self._parts.append(raw)

    def texts(self, values: tuple[str, ...]) -> None:
        """A list of texts with a 16-bit count."""
        self.u16(len(values))
        for value in values:
            self.text(value)

    def to_bytes(self) -> bytes:
        """The frame."""
        return b"".join(self._parts)


class Reader:
    """Parses one frame; every method raises ``MalformedMessage`` rather than read past the end."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: bytes, kind: Kind) -> None:
        self._data = memoryview(data)
        self._what = kind.name.lower().replace("_", " ")
        self._pos = 0
        if self._take(len(_MAGIC)) != _MAGIC:
            raise MalformedMessage(f"{self._what}: not a fedsilo secure-aggregation message")
        version, found = self._take(2)
        if version != _VERSION:
            raise MalformedMessage(f"{self._what}: format version {version}, this build reads {_VERSION}")
        if found != kind:
            name = Kind(found).name if found in {k.value for k in Kind} else f"kind {found}"
            raise MalformedMessage(f"expected a {self._what} message, got {name}")

    def _take(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise MalformedMessage(f"{self._what}: truncated (needs {end} bytes, has {len(self._data)})")
        chunk = bytes(self._data[self._pos : end])
        self._pos = end
        return chunk

    def u16(self) -> int:
        """An integer written by ``Writer.u16``."""
        return int.from_bytes(self._take(2), "big")

    def u32(self) -> int:
        """An integer written by ``Writer.u32``."""
        return int.from_bytes(self._take(4), "big")

    def u64(self) -> int:
        """An integer written by ``Writer.u64``."""
        return int.from_bytes(self._take(8), "big")

    def fixed(self, size: int) -> bytes:
        """Exactly ``size`` bytes."""
        return self._take(size)

    def blob(self, limit: int) -> bytes:
        """Bytes written by ``Writer.blob``, at most ``limit`` of them."""
        size = self.u32()
        if size > limit:
            raise MalformedMessage(f"{self._what}: a field of {size} bytes is longer than {limit}")
        return self._take(size)

    def text(self) -> str:
        """Text written by ``Writer.text``."""
        size = self.u16()
        if size > MAX_TEXT_BYTES:
            raise MalformedMessage(f"{self._what}: a text field of {size} bytes is longer than {MAX_TEXT_BYTES}")
        try:
            return self._take(size).decode()
        except UnicodeDecodeError as error:
            raise MalformedMessage(f"{self._what}: a text field is not UTF-8") from error

    def texts(self) -> tuple[str, ...]:
        """Texts written by ``Writer.texts``."""
        return tuple(self.text() for _ in range(self.u16()))

    def rest(self) -> memoryview:
        """Everything not yet read (a chunk's payload), without copying."""
        rest = self._data[self._pos :]
        self._pos = len(self._data)
        return rest

    def finish(self) -> None:
        """Refuse trailing bytes."""
        if self._pos != len(self._data):
            raise MalformedMessage(f"{self._what}: {len(self._data) - self._pos} trailing bytes")
