"""Wrong-key, replayed and malformed ciphertexts and ceremony messages are refused with their kind."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

import numpy as np
import pytest

from fedsilo.he import (
    CiphertextRejected,
    EncryptedSum,
    HEParameters,
    KeyCeremony,
    RejectionKind,
    SeenChunks,
    SignedShare,
    check_encrypted_update,
    chunk_digest,
    encrypt_update,
    load_chunk,
    sign_encrypted_update,
    sign_key_share,
    verified_joint_key,
)
from fedsilo.identity import SignatureError, SigningKey

from .conftest import JOB, SILOS, Federation, run_ceremony

SILO = SILOS[0]


def _update(federation: Federation, round_number: int = 1) -> tuple[bytes, bytes, list[bytes]]:
    chunks = encrypt_update(federation.params, federation.key, np.linspace(-1, 1, 2500))
    claim, signature = sign_encrypted_update(
        federation.signing[SILO], JOB, round_number, SILO, federation.key.key_id, chunks
    )
    return claim, signature, chunks


def _check(federation: Federation, claim: bytes, signature: bytes, chunks: list[bytes], seen: SeenChunks) -> None:
    check_encrypted_update(JOB, 1, federation.key.key_id, federation.verify[SILO], claim, signature, chunks, seen)


def _refused(kind: RejectionKind, action: Callable[[], object]) -> None:
    with pytest.raises(CiphertextRejected) as caught:
        action()
    assert caught.value.kind is kind


def test_an_honest_update_passes_every_check_and_adds(federation: Federation) -> None:
    claim, signature, chunks = _update(federation)
    seen = SeenChunks()
    _check(federation, claim, signature, chunks, seen)
    EncryptedSum(federation.params, len(chunks)).add(chunks)


def test_an_update_encrypted_for_another_joint_key_is_refused_as_wrong_key(federation: Federation) -> None:
    other = run_ceremony(federation.params)
    chunks = encrypt_update(other.params, other.key, np.ones(10))
    claim, signature = sign_encrypted_update(federation.signing[SILO], JOB, 1, SILO, other.key.key_id, chunks)
    _refused(RejectionKind.WRONG_KEY, lambda: _check(federation, claim, signature, chunks, SeenChunks()))


def test_a_replayed_chunk_is_refused_even_under_a_fresh_signature(federation: Federation) -> None:
    claim, signature, chunks = _update(federation)
    seen = SeenChunks()
    _check(federation, claim, signature, chunks, seen)
    seen.admit([chunk_digest(c) for c in chunks])
    # The same ciphertexts, signed again.
    replay, replay_signature = sign_encrypted_update(
        federation.signing[SILO], JOB, 1, SILO, federation.key.key_id, chunks
    )
    _refused(RejectionKind.REPLAYED, lambda: _check(federation, replay, replay_signature, chunks, seen))


def test_a_chunk_repeated_within_one_update_is_a_replay(federation: Federation) -> None:
    _claim, _signature, chunks = _update(federation)
    doubled = [chunks[0], chunks[0]]
    claim, signature = sign_encrypted_update(federation.signing[SILO], JOB, 1, SILO, federation.key.key_id, doubled)
    _refused(RejectionKind.REPLAYED, lambda: _check(federation, claim, signature, doubled, SeenChunks()))


def test_a_chunk_swapped_after_signing_is_malformed(federation: Federation) -> None:
    claim, signature, chunks = _update(federation)
    swapped = [chunks[1], chunks[0]]
    _refused(RejectionKind.MALFORMED, lambda: _check(federation, claim, signature, swapped, SeenChunks()))


def test_a_claim_signed_by_another_key_fails_its_signature(federation: Federation) -> None:
    _claim, _signature, chunks = _update(federation)
    claim, signature = sign_encrypted_update(SigningKey.generate(), JOB, 1, SILO, federation.key.key_id, chunks)
    with pytest.raises(SignatureError):
        _check(federation, claim, signature, chunks, SeenChunks())


def _with_header(data: bytes, **changes: int) -> bytes:
    fields = dict(
        zip(
            ("magic", "size", "major", "minor", "compression", "reserved", "total"),
            struct.unpack_from("<HBBBBHQ", data),
            strict=True,
        )
    )
    fields.update(changes)
    return struct.pack("<HBBBBHQ", *fields.values()) + data[16:]


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda c: c[:100], id="truncated"),
        pytest.param(lambda c: b"", id="empty"),
        pytest.param(lambda c: os.urandom(len(c)), id="random bytes"),
        pytest.param(lambda c: c + b"\0" * 200_000, id="oversized"),
        pytest.param(lambda c: _with_header(c, magic=0x1234), id="bad magic"),
        pytest.param(lambda c: _with_header(c, total=len(c) + 1), id="size claim wrong"),
        pytest.param(lambda c: _with_header(c, compression=7), id="unknown compression"),
        pytest.param(lambda c: c[:16] + os.urandom(len(c) - 16), id="garbage body"),
    ],
)
def test_a_malformed_chunk_is_refused_by_the_checked_loader(
    federation: Federation, mangle: Callable[[bytes], bytes]
) -> None:
    _claim, _signature, chunks = _update(federation)
    _refused(RejectionKind.MALFORMED, lambda: load_chunk(federation.params, mangle(chunks[0])))


def test_a_chunk_of_other_parameters_or_scale_is_malformed(federation: Federation) -> None:
    other = run_ceremony(HEParameters(scale_bits=30))
    chunk = encrypt_update(other.params, other.key, np.ones(4))[0]
    _refused(RejectionKind.MALFORMED, lambda: load_chunk(federation.params, chunk))
    bigger = run_ceremony(HEParameters(poly_modulus_degree=8192))
    chunk = encrypt_update(bigger.params, bigger.key, np.ones(4))[0]
    _refused(RejectionKind.MALFORMED, lambda: load_chunk(federation.params, chunk))


def test_a_public_share_offered_as_a_chunk_is_malformed(federation: Federation) -> None:
    share = federation.shares[SILO].public_share
    _refused(RejectionKind.MALFORMED, lambda: load_chunk(federation.params, share))


def test_a_sum_refuses_an_update_of_the_wrong_chunk_count_and_stays_unchanged(federation: Federation) -> None:
    _claim, _signature, chunks = _update(federation)
    total = EncryptedSum(federation.params, len(chunks))
    _refused(RejectionKind.MALFORMED, lambda: total.add(chunks[:1]))
    _refused(RejectionKind.MALFORMED, lambda: total.add([chunks[0], b"junk"]))
    assert total.count == 0


# --- The key ceremony.


def _ceremony(federation: Federation) -> KeyCeremony:
    return KeyCeremony(federation.params, JOB, federation.seed, federation.verify)


def _signed(federation: Federation, silo: str = SILO) -> SignedShare:
    return sign_key_share(federation.signing[silo], JOB, silo, federation.seed, federation.shares[silo].public_share)


def test_a_second_share_from_one_silo_is_a_replay(federation: Federation) -> None:
    ceremony = _ceremony(federation)
    ceremony.submit(_signed(federation))
    _refused(RejectionKind.REPLAYED, lambda: ceremony.submit(_signed(federation)))


def test_a_share_signed_by_someone_else_is_refused(federation: Federation) -> None:
    forged = sign_key_share(SigningKey.generate(), JOB, SILO, federation.seed, federation.shares[SILO].public_share)
    with pytest.raises(SignatureError):
        _ceremony(federation).submit(forged)


def test_a_share_for_another_ceremony_is_a_wrong_key(federation: Federation) -> None:
    other_seed = sign_key_share(
        federation.signing[SILO], JOB, SILO, os.urandom(32), federation.shares[SILO].public_share
    )
    _refused(RejectionKind.WRONG_KEY, lambda: _ceremony(federation).submit(other_seed))


def test_a_share_swapped_under_a_valid_signature_is_malformed(federation: Federation) -> None:
    honest = _signed(federation)
    swapped = SignedShare(honest.claim, honest.signature, federation.shares[SILOS[1]].public_share)
    _refused(RejectionKind.MALFORMED, lambda: _ceremony(federation).submit(swapped))


def test_a_transcript_that_leaves_a_silo_out_is_refused_by_every_silo(federation: Federation) -> None:
    partial = [_signed(federation, silo) for silo in SILOS[:-1]]
    _refused(
        RejectionKind.WRONG_KEY,
        lambda: verified_joint_key(federation.params, JOB, federation.seed, partial, federation.verify),
    )


def test_the_hub_cannot_relay_before_every_share_arrived(federation: Federation) -> None:
    ceremony = _ceremony(federation)
    ceremony.submit(_signed(federation))
    assert ceremony.missing == frozenset(SILOS[1:])
    with pytest.raises(ValueError, match="waits for"):
        ceremony.transcript()
