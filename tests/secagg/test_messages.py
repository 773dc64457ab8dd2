"""Every message has one canonical byte form, and parsing refuses anything else."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from fedsilo.api import SiloName
from fedsilo.secagg import (
    Confirmations,
    EncryptedShare,
    KeyAdvertisement,
    KeyBroadcast,
    MalformedMessage,
    MaskedChunk,
    RevealedShare,
    Share,
    ShareDelivery,
    ShareKeys,
    SurvivorConfirmation,
    UnmaskRequest,
    UnmaskResponse,
    masked_payload_digest,
)

A, B, C = SiloName("a"), SiloName("b"), SiloName("c")
ADVERT = KeyAdvertisement(A, b"e" * 32, b"m" * 32, b"s" * 64)
SHARE = Share(2, 12345)
MESSAGES = [
    ADVERT,
    KeyBroadcast((ADVERT, KeyAdvertisement(B, b"f" * 32, b"n" * 32, b"t" * 64))),
    ShareKeys(A, b"c" * 32, (EncryptedShare(A, B, b"x" * 100), EncryptedShare(A, C, b"y" * 100))),
    ShareDelivery(B, (EncryptedShare(A, B, b"x" * 100),)),
    UnmaskRequest((A, C), (B,)),
    SurvivorConfirmation(C, b"z" * 64),
    Confirmations((SurvivorConfirmation(A, b"z" * 64), SurvivorConfirmation(C, b"w" * 64))),
    UnmaskResponse(A, (RevealedShare(A, SHARE), RevealedShare(C, SHARE)), (RevealedShare(B, SHARE),)),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_messages_round_trip_through_their_bytes(message) -> None:
    data = message.to_bytes()
    assert type(message).from_bytes(data) == message
    assert type(message).from_bytes(data).to_bytes() == data


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_truncated_or_extended_bytes_are_malformed(message) -> None:
    data = message.to_bytes()
    with pytest.raises(MalformedMessage, match="truncated"):
        type(message).from_bytes(data[:-1])
    with pytest.raises(MalformedMessage, match="1 trailing bytes"):
        type(message).from_bytes(data + b"\x00")


def test_a_message_of_another_kind_is_refused() -> None:
    with pytest.raises(MalformedMessage, match="expected a key broadcast message, got KEY_ADVERTISEMENT"):
        KeyBroadcast.from_bytes(ADVERT.to_bytes())
    with pytest.raises(MalformedMessage, match="not a fedsilo secure-aggregation message"):
        KeyAdvertisement.from_bytes(b'{"type": "advertise"}')
    future = bytearray(ADVERT.to_bytes())
    future[4] = 2
    with pytest.raises(MalformedMessage, match="format version 2"):
        KeyAdvertisement.from_bytes(bytes(future))


def test_lists_must_be_sorted_and_free_of_duplicates() -> None:
    with pytest.raises(MalformedMessage, match="sorted"):
        UnmaskRequest((C, A), ())
    with pytest.raises(MalformedMessage, match="sorted"):
        UnmaskRequest((A, A), ())
    with pytest.raises(MalformedMessage, match="sorted"):
        KeyBroadcast((ADVERT, ADVERT))


def test_fixed_size_fields_are_checked() -> None:
    with pytest.raises(MalformedMessage, match="32 bytes"):
        KeyAdvertisement(A, b"e" * 31, b"m" * 32, b"s" * 64)
    with pytest.raises(MalformedMessage, match="64 bytes"):
        SurvivorConfirmation(A, b"z" * 63)
    with pytest.raises(MalformedMessage, match="at most 1024 bytes"):
        EncryptedShare(A, B, bytes(2000))


def test_an_oversized_length_field_is_refused_before_reading() -> None:
    data = bytearray(ShareDelivery(B, (EncryptedShare(A, B, b"x"),)).to_bytes())
    # The ciphertext's 32-bit length sits just before its single byte at the end.
    data[-5:-1] = (2**31).to_bytes(4, "big")
    with pytest.raises(MalformedMessage, match="longer than 1024"):
        ShareDelivery.from_bytes(bytes(data))


def test_a_masked_chunk_carries_raw_little_endian_words_without_copying_them() -> None:
    words = np.arange(1000, dtype=np.uint32) * 4_000_000
    data = MaskedChunk(A, 64, words).to_bytes()
    assert len(data) - words.nbytes < 32  # a short header, then 4 bytes per word
    parsed = MaskedChunk.from_bytes(data)
    assert parsed.silo == A and parsed.offset == 64
    np.testing.assert_array_equal(parsed.words, words)
    assert not parsed.words.flags.writeable  # a view of the received bytes
    with pytest.raises(MalformedMessage, match="header says 1000 words, payload has 3999 bytes"):
        MaskedChunk.from_bytes(data[:-1])
    with pytest.raises(MalformedMessage, match="uint32"):
        MaskedChunk(A, 0, np.zeros(4, dtype=np.int64))


def test_the_payload_digest_covers_the_words_in_order() -> None:
    first, second = np.arange(4, dtype=np.uint32), np.arange(4, 8, dtype=np.uint32)
    digest = masked_payload_digest([MaskedChunk(A, 0, first), MaskedChunk(A, 4, second)])
    assert digest == "sha256:" + hashlib.sha256(first.tobytes() + second.tobytes()).hexdigest()
    assert digest != masked_payload_digest([MaskedChunk(A, 0, second), MaskedChunk(A, 4, first)])
