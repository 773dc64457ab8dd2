"""Key agreement, key derivation, authenticated encryption and the AES-CTR mask keystream.

The primitives secure aggregation (``fedsilo.secagg``) builds on, kept beside the rest of
fedsilo's crypto so ``cryptography.hazmat`` is imported in this package only. Inputs are
checked before use; a ciphertext that fails authentication raises ``DecryptionError``,
nothing returns a silent default.
"""

from __future__ import annotations

import os

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

X25519_KEY_BYTES = 32
SEAL_KEY_BYTES = 32
# AES-128 for the mask keystream: a 128-bit PRG key is the paper's choice, and the masks
# are the hot loop of every round (AES-128 runs 10 rounds per block to AES-256's 14).
KEYSTREAM_KEY_BYTES = 16
# One AES-CTR counter block is 16 bytes: four uint32 mask words.
WORDS_PER_BLOCK = 4
_GCM_NONCE_BYTES = 12
_GCM_TAG_BYTES = 16
_AES_BLOCK_BYTES = 16


class DecryptionError(Exception):
    """A ciphertext failed authentication: tampered, or under the wrong key or context."""


class AgreementKey:
    """An X25519 private key for one round. ``repr`` never shows key material."""

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
            raise ValueError(f"an X25519 private key has {X25519_KEY_BYTES} bytes, got {len(raw)}")
        return cls(X25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        """The 32 private bytes: only ever Shamir-shared, never sent whole."""
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def public_bytes(self) -> bytes:
        """The 32 public bytes."""
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def exchange(self, peer_public: bytes) -> bytes:
        """The X25519 shared secret with a peer's public key; ``ValueError`` for a degenerate key."""
        if len(peer_public) != X25519_KEY_BYTES:
            raise ValueError(f"an X25519 public key has {X25519_KEY_BYTES} bytes, got {len(peer_public)}")
        # pyca/cryptography raises ValueError when the result is all zeros (a low-order
        # point), so a peer cannot force a known shared secret.
        return self._key.exchange(X25519PublicKey.from_public_bytes(peer_public))

    def __repr__(self) -> str:
        return "AgreementKey(<hidden>)"


def derive_key(secret: bytes, context: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 of ``secret``, bound to ``context`` so keys made for different uses never coincide."""
    if not secret:
        raise ValueError("cannot derive a key from an empty secret")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=context).derive(secret)


def seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """AES-256-GCM under ``key``: a random 96-bit nonce, then ciphertext and tag."""
    if len(key) != SEAL_KEY_BYTES:
        raise ValueError(f"the sealing key must be {SEAL_KEY_BYTES} bytes, got {len(key)}")
    nonce = os.urandom(_GCM_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def open_sealed(key: bytes, blob: bytes, associated: bytes) -> bytes:
    """Decrypt what ``seal`` made; ``DecryptionError`` if any byte or the context changed."""
    if len(key) != SEAL_KEY_BYTES:
        raise ValueError(f"the sealing key must be {SEAL_KEY_BYTES} bytes, got {len(key)}")
    if len(blob) < _GCM_NONCE_BYTES + _GCM_TAG_BYTES:
        raise DecryptionError(f"a sealed message has at least {_GCM_NONCE_BYTES + _GCM_TAG_BYTES} bytes")
    try:
        return AESGCM(key).decrypt(blob[:_GCM_NONCE_BYTES], blob[_GCM_NONCE_BYTES:], associated)
    except InvalidTag as error:
        raise DecryptionError("ciphertext failed authentication") from error


class KeystreamBuffer:
    """AES-128-CTR keystream slices, written into one buffer allocated up front.

    Word ``w`` of the stream under a key is word ``w % 4`` of counter block ``w // 4``, so
    any slice can be made on its own: a vector is masked and unmasked chunk by chunk, in
    any order. Each key must mask one stream only (keys are derived per round and purpose).
    """

    __slots__ = ("_out", "_words", "_zeros")

    def __init__(self, max_words: int) -> None:
        if max_words < 1:
            raise ValueError("a keystream buffer holds at least one word")
        size = 4 * max_words
        # CTR encryption of zeros is the keystream itself; ``update_into`` asks for one
        # block of slack after the output.
        self._zeros = bytes(size)
        self._out = bytearray(size + _AES_BLOCK_BYTES)
        self._words: npt.NDArray[np.uint32] = np.frombuffer(self._out, dtype="<u4")

    @property
    def max_words(self) -> int:
        """The longest slice one call can make."""
        return len(self._zeros) // 4

    def words(self, key: bytes, first_word: int, count: int) -> npt.NDArray[np.uint32]:
        """Keystream words ``first_word .. first_word + count - 1`` as little-endian uint32.

        The result is a view of this buffer, valid until the next call.
        """
        if len(key) != KEYSTREAM_KEY_BYTES:
            raise ValueError(f"a keystream key has {KEYSTREAM_KEY_BYTES} bytes, got {len(key)}")
        if first_word < 0 or first_word % WORDS_PER_BLOCK:
            raise ValueError("a keystream slice starts at a non-negative multiple of 4 words")
        if not 0 < count <= self.max_words:
            raise ValueError(f"a keystream slice has 1 to {self.max_words} words, asked for {count}")
        counter = (first_word // WORDS_PER_BLOCK).to_bytes(_AES_BLOCK_BYTES, "big")
        encryptor = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor()
        encryptor.update_into(memoryview(self._zeros)[: 4 * count], self._out)
        return self._words[:count]
