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
    check_decryption_share,
    chunk_digest,
    encrypt_update,
    load_chunk,
    sign_decryption_share,
    sign_key_share,
    verified_joint_key,
    wire,
)
from fedsilo.identity import SignatureError, SigningKey

from .conftest import JOB, SILOS, Federation, run_ceremony

SILO = SILOS[0]


def _update(federation: Federation) -> list[bytes]:
    return encrypt_update(federation.params, federation.key, np.linspace(-1, 1, 2500))


def _refused(kind: RejectionKind, action: Callable[[], object]) -> None:
    with pytest.raises(CiphertextRejected) as caught:
        action()
    assert caught.value.kind is kind


def test_an_honest_update_passes_every_check_and_adds(federation: Federation) -> None:
    chunks = _update(federation)
    payload = wire.encode_update(federation.key.key_id, chunks)
    assert wire.decode_update(federation.params, payload, federation.key.key_id, len(chunks)) == chunks
    SeenChunks().check([chunk_digest(c) for c in chunks])
    EncryptedSum(federation.params, len(chunks)).add(chunks)


def test_an_update_encrypted_for_another_joint_key_is_refused_as_wrong_key(federation: Federation) -> None:
    other = run_ceremony(federation.params)
    chunks = encrypt_update(other.params, other.key, np.ones(10))
    payload = wire.encode_update(other.key.key_id, chunks)
    _refused(
        RejectionKind.WRONG_KEY,
        lambda: wire.decode_update(federation.params, payload, federation.key.key_id, len(chunks)),
    )


def test_a_replayed_chunk_is_refused(federation: Federation) -> None:
    digests = [chunk_digest(c) for c in _update(federation)]
    seen = SeenChunks()
    seen.check(digests)
    seen.admit(digests)
    _refused(RejectionKind.REPLAYED, lambda: seen.check(digests[:1]))


def test_a_chunk_repeated_within_one_update_is_a_replay(federation: Federation) -> None:
    chunk = _update(federation)[0]
    _refused(RejectionKind.REPLAYED, lambda: SeenChunks().check([chunk_digest(chunk)] * 2))


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"FHU1" + struct.pack("<I", 2**31), id="absurd part count"),
        pytest.param(b"XXXX" + struct.pack("<I", 0), id="wrong tag"),
        pytest.param(b"FHU1" + struct.pack("<I", 1) + struct.pack("<I", 2**30), id="part longer than the frame"),
        pytest.param(wire.pack(wire.UPDATE, [b"k"]) + b"tail", id="trailing bytes"),
    ],
)
def test_a_malformed_update_frame_is_refused_before_any_allocation(federation: Federation, payload: bytes) -> None:
    _refused(RejectionKind.MALFORMED, lambda: wire.decode_update(federation.params, payload, federation.key.key_id, 2))


def test_an_update_with_the_wrong_chunk_count_is_malformed(federation: Federation) -> None:
    chunks = _update(federation)
    payload = wire.encode_update(federation.key.key_id, chunks[:1])
    _refused(
        RejectionKind.MALFORMED,
        lambda: wire.decode_update(federation.params, payload, federation.key.key_id, len(chunks)),
    )


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
    chunks = _update(federation)
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
    chunks = _update(federation)
    total = EncryptedSum(federation.params, len(chunks))
    _refused(RejectionKind.MALFORMED, lambda: total.add(chunks[:1]))
    _refused(RejectionKind.MALFORMED, lambda: total.add([chunks[0], b"junk"]))
    assert total.count == 0


# --- The key ceremony.


def _ceremony(federation: Federation) -> KeyCeremony:
    return KeyCeremony(federation.params, JOB, federation.seed, federation.verify)


def _signed(federation: Federation, silo: str = SILO) -> SignedShare:
    return sign_key_share(federation.signing[silo], JOB, silo, federation.seed, federation.shares[silo].public_share)


def test_a_silo_posting_another_silos_signed_share_is_refused_and_the_owner_still_can_post(
    federation: Federation,
) -> None:
    ceremony = _ceremony(federation)
    with pytest.raises(SignatureError):
        ceremony.submit(_signed(federation, SILOS[1]), SILO)
    ceremony.submit(_signed(federation, SILOS[1]), SILOS[1])
    assert ceremony.missing == frozenset({SILO, SILOS[2]})


def test_a_second_share_from_one_silo_is_a_replay(federation: Federation) -> None:
    ceremony = _ceremony(federation)
    ceremony.submit(_signed(federation), SILO)
    _refused(RejectionKind.REPLAYED, lambda: ceremony.submit(_signed(federation), SILO))


def test_a_share_signed_by_someone_else_is_refused(federation: Federation) -> None:
    forged = sign_key_share(SigningKey.generate(), JOB, SILO, federation.seed, federation.shares[SILO].public_share)
    with pytest.raises(SignatureError):
        _ceremony(federation).submit(forged, SILO)


def test_a_share_for_another_ceremony_is_a_wrong_key(federation: Federation) -> None:
    other_seed = sign_key_share(
        federation.signing[SILO], JOB, SILO, os.urandom(32), federation.shares[SILO].public_share
    )
    _refused(RejectionKind.WRONG_KEY, lambda: _ceremony(federation).submit(other_seed, SILO))


def test_a_share_swapped_under_a_valid_signature_is_malformed(federation: Federation) -> None:
    honest = _signed(federation)
    swapped = SignedShare(honest.claim, honest.signature, federation.shares[SILOS[1]].public_share)
    _refused(RejectionKind.MALFORMED, lambda: _ceremony(federation).submit(swapped, SILO))


def test_a_transcript_that_leaves_a_silo_out_is_refused_by_every_silo(federation: Federation) -> None:
    partial = [_signed(federation, silo) for silo in SILOS[:-1]]
    _refused(
        RejectionKind.WRONG_KEY,
        lambda: verified_joint_key(federation.params, JOB, federation.seed, partial, federation.verify),
    )


def test_the_hub_relays_only_the_shares_that_arrived(federation: Federation) -> None:
    ceremony = _ceremony(federation)
    ceremony.submit(_signed(federation), SILO)
    assert ceremony.missing == frozenset(SILOS[1:])
    assert [m.share for m in ceremony.transcript()] == [federation.shares[SILO].public_share]


# --- Decryption shares.


def test_a_decryption_share_of_another_sum_or_round_or_altered_is_refused(federation: Federation) -> None:
    key = federation.signing[SILO]
    share = b"share-bytes"
    claim, signature = sign_decryption_share(key, JOB, 3, SILO, "sha256:" + "a" * 64, share)

    def check(round_number: int = 3, sum_digest: str = "sha256:" + "a" * 64, body: bytes = share) -> None:
        check_decryption_share(JOB, round_number, SILO, sum_digest, federation.verify[SILO], claim, signature, body)

    check()
    _refused(RejectionKind.REPLAYED, lambda: check(round_number=4))
    _refused(RejectionKind.WRONG_KEY, lambda: check(sum_digest="sha256:" + "b" * 64))
    _refused(RejectionKind.MALFORMED, lambda: check(body=b"other"))
    with pytest.raises(SignatureError):
        check_decryption_share(JOB, 3, SILO, "sha256:" + "a" * 64, federation.verify[SILOS[1]], claim, signature, share)
