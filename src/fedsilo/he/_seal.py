"""The one place that touches Microsoft SEAL (through TenSEAL's ``sealapi`` binding).

Everything homomorphic in fedsilo is built from SEAL's own CKKS operations (encoding,
public-key encryption, addition, decryption) plus additions of polynomials in SEAL's NTT
form, which is what multiparty key assembly and decryption-share fusion need and what SEAL
does not offer. This module converts between SEAL objects and their RNS/NTT coefficient
arrays; nobody else reads or writes SEAL's bytes.

Bytes from another party become a SEAL object only through ``load``: the size is bounded
first, the header is SEAL's, and SEAL's own loader checks the object against the
context (``is_valid_for``: parameters, coefficient ranges, sizes). Nothing is unpickled.
Coefficient arrays are read from objects this process holds, never parsed out of
untrusted bytes, and written back through SEAL's loader so the same checks apply.

``sealapi`` only saves to and loads from file paths, so both go through a private
directory on a memory file system (``/dev/shm`` where there is one), mode 0700; a secret
key is never saved.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import tenseal.sealapi as seal
import zstandard

from ._errors import CiphertextRejected, RejectionKind

#: SEAL's serialization header: magic, header size, version, compression, reserved, total size.
_HEADER = struct.Struct("<HBBBBHQ")
_MAGIC = 0xA15E
_COMPRESSION_NONE = 0
_COMPRESSION_ZSTD = 2

Words = npt.NDArray[np.uint64]


class _Serializable(Protocol):
    def save(self, path: str, /) -> None: ...


class _Loadable(_Serializable, Protocol):
    def load(self, context: seal.SEALContext, path: str, /) -> None: ...


Loadable = TypeVar("Loadable", bound=_Loadable)


class _Scratch:
    """A private directory for sealapi's path-based save and load, removed with the process's codec."""

    def __init__(self) -> None:
        shm = "/dev/shm"  # noqa: S108 - a mode-0700 directory of our own below it (mkdtemp), not a shared name
        base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
        self.path = Path(tempfile.mkdtemp(prefix="fedsilo-he-", dir=base))
        self._lock = threading.Lock()
        self._counter = 0
        weakref.finalize(self, shutil.rmtree, self.path, True)

    def file(self) -> Path:
        with self._lock:
            self._counter += 1
            return self.path / f"{threading.get_ident()}-{self._counter}"


_SCRATCH = _Scratch()


def to_bytes(obj: _Serializable) -> bytes:
    """SEAL's own serialization of ``obj`` (zstd-compressed, as SEAL saves by default)."""
    path = _SCRATCH.file()
    try:
        obj.save(str(path))
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def _checked_body(data: bytes, max_bytes: int) -> bytes:
    """The uncompressed body of untrusted SEAL bytes after the header and size checks (before SEAL's own)."""
    if len(data) > max_bytes:
        raise CiphertextRejected(RejectionKind.MALFORMED, f"{len(data)} bytes, above the bound of {max_bytes}")
    if len(data) < _HEADER.size:
        raise CiphertextRejected(RejectionKind.MALFORMED, f"{len(data)} bytes: shorter than SEAL's header")
    magic, header_size, _major, _minor, compression, _reserved, total = _HEADER.unpack_from(data)
    if magic != _MAGIC or header_size != _HEADER.size or compression not in (_COMPRESSION_NONE, _COMPRESSION_ZSTD):
        raise CiphertextRejected(RejectionKind.MALFORMED, "not a SEAL object (bad header)")
    if total != len(data):
        raise CiphertextRejected(RejectionKind.MALFORMED, f"the header claims {total} bytes, {len(data)} arrived")
    if compression == _COMPRESSION_ZSTD:
        return _bounded_decompress(data[_HEADER.size :], max_bytes * 2)
    return data[_HEADER.size :]


def _load_checked(empty: Loadable, context: seal.SEALContext, data: bytes) -> Loadable:
    path = _SCRATCH.file()
    try:
        path.write_bytes(data)
        empty.load(context, str(path))
    except (RuntimeError, ValueError, TypeError) as error:
        raise CiphertextRejected(RejectionKind.MALFORMED, f"SEAL refused the object: {error}") from None
    finally:
        path.unlink(missing_ok=True)
    return empty


def load(empty: Loadable, context: seal.SEALContext, data: bytes, max_bytes: int) -> Loadable:
    """Load untrusted ``data`` into ``empty`` through SEAL's checked loader, or raise ``CiphertextRejected``.

    ``max_bytes`` bounds both the bytes given and the size SEAL's header claims after
    decompression, so a small hostile blob cannot make SEAL allocate gigabytes.
    """
    _checked_body(data, max_bytes)
    return _load_checked(empty, context, data)


def load_with_coefficients(
    empty: Loadable, context: seal.SEALContext, data: bytes, max_bytes: int, shape: tuple[int, int, int]
) -> tuple[Loadable, Words]:
    """``load``, and the coefficient words (``shape``: polys, moduli, degree) of the bytes SEAL accepted.

    Read from the very bytes SEAL's loader validated, so no second serialization is needed.
    """
    body = _checked_body(data, max_bytes)
    loaded = _load_checked(empty, context, data)
    return loaded, _tail(body, shape)


def _tail(body: bytes, shape: tuple[int, int, int]) -> Words:
    words = shape[0] * shape[1] * shape[2]
    if len(body) < words * 8:
        raise CiphertextRejected(
            RejectionKind.MALFORMED, f"a SEAL object of {len(body)} bytes has no {words} coefficients"
        )
    return np.frombuffer(body, dtype="<u8", count=words, offset=len(body) - words * 8).reshape(shape).copy()


def _bounded_decompress(body: bytes, limit: int) -> bytes:
    """Decompress a zstd body, refusing one that would grow beyond ``limit`` bytes."""
    try:
        reader = zstandard.ZstdDecompressor().decompressobj()
        out = reader.decompress(body)
    except zstandard.ZstdError as error:
        raise CiphertextRejected(RejectionKind.MALFORMED, f"bad compressed body: {error}") from None
    if len(out) > limit:
        raise CiphertextRejected(RejectionKind.MALFORMED, f"decompresses to more than {limit} bytes")
    return out


def _raw_body(obj: _Serializable, limit: int) -> tuple[bytes, bytes]:
    """The header and the uncompressed body of an object this process holds."""
    data = to_bytes(obj)
    header = data[: _HEADER.size]
    compression = _HEADER.unpack_from(header)[4]
    body = data[_HEADER.size :]
    if compression == _COMPRESSION_ZSTD:
        body = _bounded_decompress(body, limit)
    return header, body


def coefficients(obj: _Serializable, polys: int, degree: int, moduli: int) -> Words:
    """The ``polys`` x ``moduli`` x ``degree`` coefficient words of a local SEAL object (NTT form).

    SEAL writes an object's members and then its coefficient array last, so the array is
    the body's tail; its length is fixed by the parameters.
    """
    words = polys * moduli * degree
    _header, body = _raw_body(obj, (words + 64) * 8)
    return _tail(body, (polys, moduli, degree))


class CoefficientWriter:
    """Objects shaped like ``template`` (type, level, scale, size) with other coefficients, many times over.

    The template is serialized once; each ``to_bytes`` puts new coefficients behind its
    members, uncompressed. ``to_object`` sends them through SEAL's loader, which checks every
    coefficient is below its modulus, so an arithmetic slip is an error, not a corrupt object.
    """

    def __init__(self, template: _Loadable, context: seal.SEALContext, words: int) -> None:
        self._type = type(template)
        self._context = context
        header, body = _raw_body(template, (words + 64) * 8)
        if len(body) < words * 8:
            raise ValueError("the template is smaller than the coefficients it should hold")
        self._prefix = body[: len(body) - words * 8]
        self._header = _HEADER.unpack(header)
        self._words = words

    def to_bytes(self, values: Words) -> bytes:
        """SEAL's uncompressed serialization of the object with ``values`` as its coefficients."""
        if values.size != self._words:
            raise ValueError(f"{values.size} coefficients for an object of {self._words}")
        raw = values.astype("<u8", copy=False).tobytes()
        magic, size, major, minor, _compression, reserved, _total = self._header
        total = _HEADER.size + len(self._prefix) + len(raw)
        return _HEADER.pack(magic, size, major, minor, _COMPRESSION_NONE, reserved, total) + self._prefix + raw

    def to_object(self, values: Words) -> Any:
        """The object itself, checked by SEAL's loader."""
        data = self.to_bytes(values)
        return _load_checked(self._type(), self._context, data)


def with_coefficients(template: Loadable, context: seal.SEALContext, values: Words) -> Loadable:
    """A copy of ``template`` whose coefficients are ``values`` (one object: ``CoefficientWriter`` for many)."""
    result: Loadable = CoefficientWriter(template, context, values.size).to_object(values)
    return result
