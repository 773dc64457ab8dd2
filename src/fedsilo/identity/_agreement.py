"""Key agreement, key derivation, authenticated encryption and the AES-CTR keystream.

The primitives secure aggregation needs, kept with the rest of fedsilo's crypto so
``cryptography.hazmat`` is imported in this package only. Decryption failures raise
``DecryptionError``; nothing returns a silent default.
"""

from __future__ import annotations

import os

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

X25519_KEY_BYTES = 32
_GCM_NONCE_BYTES = 12
# AES-CTR yields 16 bytes per counter block: four uint32 mask words.
WORDS_PER_BLOCK = 4


class DecryptionError(Exception):
    """A ciphertext failed authentication (tampered, or under the wrong key or context)."""


class AgreementKey:
    """An X25519 private key. ``repr`` never shows key material."""

    __slots__ = ("_key",)

    def __init__(self, key: X25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> AgreementKey:
        """A fresh random key."""
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> AgreementKey:
        """Rebuild a key from its 32 private bytes (after Shamir reconstruction)."""
        if len(raw) != X25519_KEY_BYTES:
            raise ValueError(f"X25519 private key has {len(raw)} bytes, expected {X25519_KEY_BYTES}")
        return cls(X25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        """The 32 private bytes: only ever Shamir-shared, never sent whole."""
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def public_bytes(self) -> bytes:
        """The 32 public bytes."""
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def exchange(self, peer_public: bytes) -> bytes:
        """The X25519 shared secret with a peer's public key."""
        if len(peer_public) != X25519_KEY_BYTES:
            raise ValueError(f"X25519 public key has {len(peer_public)} bytes, expected {X25519_KEY_BYTES}")
        return self._key.exchange(X25519PublicKey.from_public_bytes(peer_public))

    def __repr__(self) -> str:
        return "AgreementKey(<hidden>)"


def derive_key(secret: bytes, context: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 of ``secret``, bound to ``context`` so keys of different uses never collide."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=context).derive(secret)


def seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """AES-256-GCM: a random 96-bit nonce, then ciphertext and tag."""
    nonce = os.urandom(_GCM_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def open_sealed(key: bytes, blob: bytes, associated: bytes) -> bytes:
    """Decrypt what ``seal`` made; ``DecryptionError`` if anything was changed."""
    if len(blob) < _GCM_NONCE_BYTES + 16:
        raise DecryptionError("ciphertext is too short")
    try:
        return AESGCM(key).decrypt(blob[:_GCM_NONCE_BYTES], blob[_GCM_NONCE_BYTES:], associated)
    except InvalidTag as error:
        raise DecryptionError("ciphertext failed authentication") from error


_ZEROS = bytes(1 << 22)


def _ctr_encryptor(key: bytes, first_word: int) -> CipherContext:
    """An AES-256-CTR encryptor whose keystream starts at word ``first_word`` (validated)."""
    if first_word % WORDS_PER_BLOCK:
        raise ValueError("keystream slices must start at a multiple of 4 words")
    if len(key) != 32:
        raise ValueError("the keystream key must be 32 bytes")
    counter = (first_word // WORDS_PER_BLOCK).to_bytes(16, "big")
    return Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor()


def keystream_words(key: bytes, first_word: int, count: int) -> npt.NDArray[np.uint32]:
    """AES-256-CTR keystream words ``first_word .. first_word + count - 1`` as little-endian uint32.

    Word ``w`` comes from counter block ``w // 4``, so any slice of the stream can be made
    on its own: chunks are masked and unmasked independently, in any order.
    """
    encryptor = _ctr_encryptor(key, first_word)
    size = 4 * count
    zeros = memoryview(_ZEROS)[:size] if size <= len(_ZEROS) else bytes(size)
    # The CTR keystream is the encryption of zeros.
    return np.frombuffer(encryptor.update(zeros), dtype="<u4")


class Keystream:
    """One key's AES-256-CTR keystream (the words of ``keystream_words``), read forward into a buffer.

    Masking a vector against many peers reads every peer's stream slice by slice; this keeps one
    cipher context per stream and writes each slice into the caller's scratch buffer, so the mask
    expansion allocates nothing per slice and the slice stays in cache for the modular add.
    """

    __slots__ = ("_encryptor",)

    #: Bytes a scratch buffer needs beyond the slice: ``update_into`` wants one block of room.
    SLACK_BYTES = 16

    def __init__(self, key: bytes, first_word: int = 0) -> None:
        self._encryptor = _ctr_encryptor(key, first_word)

    def read_into(self, scratch: memoryview, count: int) -> None:
        """Write the next ``count`` words (little-endian) to the start of ``scratch`` (bytes).

        ``scratch`` holds at least ``4 * count + SLACK_BYTES`` bytes. The stream continues
        where the last call ended; called once per slice per peer, so it checks only sizes.
        """
        size = 4 * count
        if count < 0 or scratch.nbytes < size + self.SLACK_BYTES:
            raise ValueError(f"a slice of {count} words needs a scratch buffer of {size + self.SLACK_BYTES} bytes")
        # The CTR keystream is the encryption of zeros.
        zeros = memoryview(_ZEROS)[:size] if size <= len(_ZEROS) else bytes(size)
        self._encryptor.update_into(zeros, scratch)
