"""The primitives secure aggregation stands on: X25519, HKDF, AES-GCM, the AES-CTR keystream, digests."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fedsilo.identity import (
    AgreementKey,
    DecryptionError,
    KeystreamBuffer,
    StreamingDigest,
    derive_key,
    open_sealed,
    seal,
)


def test_both_sides_of_an_x25519_agreement_get_the_same_secret() -> None:
    a, b = AgreementKey.generate(), AgreementKey.generate()
    assert a.exchange(b.public_bytes()) == b.exchange(a.public_bytes())
    rebuilt = AgreementKey.from_private_bytes(a.private_bytes())
    assert rebuilt.public_bytes() == a.public_bytes()
    assert "hidden" in repr(a) and a.private_bytes().hex() not in repr(a)


def test_a_low_order_public_key_is_refused_rather_than_agreeing_on_zero() -> None:
    # The all-zero point has order 1 (and 2^255 - 19 + 1 reduces to 1): the shared secret
    # would be all zeros, known to anyone.
    with pytest.raises(ValueError):
        AgreementKey.generate().exchange(bytes(32))
    with pytest.raises(ValueError):
        AgreementKey.generate().exchange(b"\x01" + bytes(31))
    with pytest.raises(ValueError, match="32 bytes"):
        AgreementKey.generate().exchange(bytes(31))


def test_derived_keys_differ_by_context_and_length() -> None:
    secret = b"s" * 32
    assert derive_key(secret, b"a") != derive_key(secret, b"b")
    assert len(derive_key(secret, b"a", 16)) == 16
    with pytest.raises(ValueError):
        derive_key(b"", b"a")


def test_sealed_messages_open_only_unchanged_under_the_same_key_and_context() -> None:
    key = derive_key(b"k" * 32, b"seal")
    blob = seal(key, b"share", b"context")
    assert open_sealed(key, blob, b"context") == b"share"
    assert seal(key, b"share", b"context") != blob  # a fresh nonce every time
    flipped = bytearray(blob)
    flipped[-1] ^= 1
    for key_, blob_, context in (
        (key, bytes(flipped), b"context"),
        (key, blob, b"other context"),
        (derive_key(b"x" * 32, b"seal"), blob, b"context"),
        (key, blob[:20], b"context"),
    ):
        with pytest.raises(DecryptionError):
            open_sealed(key_, blob_, context)


def _reference_keystream(key: bytes, blocks: int) -> np.ndarray:
    """AES-ECB of the big-endian counter blocks 0, 1, 2, ...: the CTR keystream by definition."""
    counters = b"".join(i.to_bytes(16, "big") for i in range(blocks))
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return np.frombuffer(encryptor.update(counters) + encryptor.finalize(), dtype="<u4")


def test_the_keystream_is_aes_ctr_from_counter_zero_read_as_little_endian_words() -> None:
    key = bytes(range(16))
    stream = KeystreamBuffer(64)
    np.testing.assert_array_equal(stream.words(key, 0, 64), _reference_keystream(key, 16))


def test_any_slice_of_the_keystream_can_be_made_on_its_own() -> None:
    key = b"\x07" * 16
    whole = KeystreamBuffer(1000).words(key, 0, 1000).copy()
    small = KeystreamBuffer(100)
    for start, count in ((0, 1), (4, 99), (500, 100), (996, 4), (8, 3)):
        np.testing.assert_array_equal(small.words(key, start, count), whole[start : start + count])


def test_keystream_arguments_are_checked() -> None:
    stream = KeystreamBuffer(8)
    with pytest.raises(ValueError, match="16 bytes"):
        stream.words(b"k" * 32, 0, 4)
    with pytest.raises(ValueError, match="multiple of 4"):
        stream.words(b"k" * 16, 2, 4)
    with pytest.raises(ValueError, match="1 to 8 words"):
        stream.words(b"k" * 16, 0, 9)


def test_the_streaming_digest_is_sha256_of_everything_in_order() -> None:
    digest = StreamingDigest()
    parts = [b"abc", np.arange(10, dtype=np.uint32).data, b""]
    for part in parts:
        digest.update(part)
    joined = b"".join(bytes(p) for p in parts)
    assert digest.text() == "sha256:" + hashlib.sha256(joined).hexdigest()
    assert digest.raw() == hashlib.sha256(joined).digest()
