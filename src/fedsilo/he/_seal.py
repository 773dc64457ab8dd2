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
from typing import Protocol, TypeVar

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


def load(empty: Loadable, context: seal.SEALContext, data: bytes, max_bytes: int) -> Loadable:
    """Load untrusted ``data`` into ``empty`` through SEAL's checked loader, or raise ``CiphertextRejected``.

    ``max_bytes`` bounds both the bytes given and the size SEAL's header claims after
    decompression, so a small hostile blob cannot make SEAL allocate gigabytes.
    """
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
        _bounded_decompress(data[_HEADER.size :], max_bytes * 2)
    path = _SCRATCH.file()
    try:
        path.write_bytes(data)
        empty.load(context, str(path))
    except (RuntimeError, ValueError, TypeError) as error:
        raise CiphertextRejected(RejectionKind.MALFORMED, f"SEAL refused the object: {error}") from None
    finally:
        path.unlink(missing_ok=True)
    return empty


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
    if len(body) < words * 8:
        raise ValueError(f"a SEAL object of {len(body)} bytes has no {words} coefficients")
    tail = np.frombuffer(body, dtype="<u8", count=words, offset=len(body) - words * 8)
    return tail.reshape(polys, moduli, degree).copy()


def with_coefficients(template: Loadable, context: seal.SEALContext, values: Words) -> Loadable:
    """A copy of ``template`` (same type, level, scale, size) whose coefficients are ``values``.

    The result goes through SEAL's loader, which checks every coefficient is below its
    modulus, so an arithmetic slip here is an error, not a corrupt object.
    """
    header, body = _raw_body(template, (values.size + 64) * 8)
    raw = values.astype("<u8", copy=False).tobytes()
    if len(body) < len(raw):
        raise ValueError("the template is smaller than the coefficients given")
    new_body = body[: len(body) - len(raw)] + raw
    magic, size, major, minor, _compression, reserved, _total = _HEADER.unpack(header)
    data = _HEADER.pack(magic, size, major, minor, _COMPRESSION_NONE, reserved, _HEADER.size + len(new_body))
    fresh = type(template)()
    return load(fresh, context, data + new_body, len(data) + len(new_body))
