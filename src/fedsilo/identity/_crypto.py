"""The one place fedsilo touches ``cryptography.hazmat``: thin, pure functions with checked inputs.

Everything that signs, verifies, agrees keys, derives keys or encrypts calls in here, so a
reviewer audits one module. Verification failures *raise* ``SignatureError``; nothing in
this module returns False for a failed check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

ED25519_PUBLIC_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64


class SignatureError(Exception):
    """A signature did not verify; ``reason`` says which check failed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Signer(Protocol):
    """What signs for a party: a ``SigningKey``, or a sidecar's key in force (``fedsilo.sidecar``'s ``SiloKeys``)."""

    @property
    def public_key(self) -> VerifyKey:
        """The public half of the key that signs now."""
        ...

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``; 64 bytes."""
        ...


class SigningKey:
    """An Ed25519 private key. Its bytes are never printed: ``repr`` shows only the fingerprint."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes) -> SigningKey:
        """Parse a PKCS#8 PEM Ed25519 key; ``ValueError`` if it is something else."""
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return cls(key)

    @property
    def public_key(self) -> VerifyKey:
        """The public half."""
        return VerifyKey(self._key.public_key())

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``; 64 bytes."""
        return self._key.sign(message)

    def private_bytes_pem(self) -> bytes:
        """PKCS#8 PEM, for writing to a 0600 file or a Kubernetes Secret only."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:
        return f"SigningKey(fingerprint={self.public_key.fingerprint()})"


class VerifyKey:
    """An Ed25519 public key."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key

    @classmethod
    def from_bytes(cls, raw: bytes) -> VerifyKey:
        """Load 32 raw bytes; raise ``SignatureError`` if they are not a public key."""
        if len(raw) != ED25519_PUBLIC_KEY_BYTES:
            raise SignatureError(f"public key has {len(raw)} bytes, expected {ED25519_PUBLIC_KEY_BYTES}")
        return cls(Ed25519PublicKey.from_public_bytes(raw))

    @classmethod
    def from_base64(cls, text: str) -> VerifyKey:
        """Load the base64 form a Silo object registers."""
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError as error:
            raise SignatureError("public key is not valid base64") from error
        return cls.from_bytes(raw)

    def raw(self) -> bytes:
        """The 32 raw bytes."""
        return self._key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def to_base64(self) -> str:
        """The base64 form a Silo object registers."""
        return base64.b64encode(self.raw()).decode("ascii")

    def fingerprint(self) -> str:
        """``sha256:`` and the first 16 hex digits of the key's digest; safe to log."""
        return "sha256:" + hashlib.sha256(self.raw()).hexdigest()[:16]

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise ``SignatureError`` unless ``signature`` is this key's signature of ``message``."""
        if len(signature) != ED25519_SIGNATURE_BYTES:
            raise SignatureError(f"signature has {len(signature)} bytes, expected {ED25519_SIGNATURE_BYTES}")
        try:
            self._key.verify(signature, message)
        except InvalidSignature as error:
            raise SignatureError("signature does not match the registered key") from error

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and hmac.compare_digest(self.raw(), other.raw())

    def __hash__(self) -> int:
        return hash(self.raw())

    def __repr__(self) -> str:
        return f"VerifyKey({self.fingerprint()})"


def write_private_file(path: Path, data: bytes) -> None:
    """Write secret bytes to ``path`` created with mode 0600 (never world- or group-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    try:
        os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
        os.write(fd, data)
    finally:
        os.close(fd)


def readable_by_others(info: os.stat_result, euid: int, egid: int) -> bool:
    """Whether anyone but the reading process may read or change a key file with ``info``.

    A group may read it only as Kubernetes mounts a Secret for a pod that is not root:
    owned by root, in the pod's own group (its fsGroup, which kubelet always grants read).
    """
    mode = info.st_mode
    if mode & stat.S_IRWXO or mode & (stat.S_IWGRP | stat.S_IXGRP):
        return True
    mounted_secret = info.st_uid == 0 and info.st_gid == egid and euid != 0
    return bool(mode & stat.S_IRGRP) and not mounted_secret


def load_signing_key(path: Path) -> SigningKey:
    """Read a PKCS#8 PEM Ed25519 key; refuse files others can read (see :func:`readable_by_others`)."""
    info = path.stat()
    if readable_by_others(info, os.geteuid(), os.getegid()):
        mode = oct(info.st_mode & 0o777)
        raise PermissionError(f"{path} is readable by others (mode {mode}); run chmod 600 {path}")
    try:
        return SigningKey.from_pem(path.read_bytes())
    except ValueError as error:
        raise ValueError(f"{path} does not hold an Ed25519 private key ({error})") from error


def save_signing_key(key: SigningKey, path: Path) -> None:
    """Write ``key`` as PEM with mode 0600."""
    write_private_file(path, key.private_bytes_pem())


def sha256_digest(*parts: ReadableBuffer) -> str:
    """``sha256:<hex>`` of ``parts`` one after another, the digest form every persisted artifact carries.

    Several parts: a file written piece by piece (a checkpoint's tensors) is digested without
    joining it first.
    """
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return "sha256:" + digest.hexdigest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare secrets or digests without leaking where they differ."""
    return hmac.compare_digest(a, b)
