"""fedsilo's crypto primitives reproduce the published known-answer vectors.

Each test goes through ``fedsilo.identity``'s own functions (not the library beneath), so a
wrong key size, byte order, counter layout, nonce placement or KDF parameter in fedsilo
shows up here as a wrong answer:

- X25519: RFC 7748, section 5.2 (scalar multiplication) and section 6.1 (Diffie-Hellman);
- HKDF-SHA256: RFC 5869, appendix A.3 (test case 3, the one with no salt and no info,
  which is how ``derive_key`` calls HKDF when ``context`` is empty), plus the same input
  with RFC 5869's own info and length to show that ``context`` is HKDF's ``info``;
- Ed25519: RFC 8032, section 7.1 (tests 1-3);
- AES-CTR keystream: NIST SP 800-38A, F.5.5 (CTR-AES256; ``keystream_words`` takes
  AES-256 keys only, so the AES-128 vector of F.5.1 cannot be fed to it);
- AES-256-GCM: the GCM specification's test cases 13, 14 and 16 (McGrew and Viega, "The
  Galois/Counter Mode of Operation", the source of NIST's own GCM examples).
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from fedsilo.identity import (
    WORDS_PER_BLOCK,
    AgreementKey,
    DecryptionError,
    Keystream,
    SignatureError,
    derive_key,
    keystream_words,
    load_signing_key,
    open_sealed,
    seal,
)


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# ----- X25519, RFC 7748 ------------------------------------------------------------------------

SCALAR_MULTIPLICATION = [
    (
        "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
        "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
    ),
    (
        "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
        "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
        "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
    ),
]


@pytest.mark.parametrize(("scalar", "u", "product"), SCALAR_MULTIPLICATION)
def test_x25519_multiplies_the_rfc_7748_scalars(scalar: str, u: str, product: str) -> None:
    assert AgreementKey.from_private_bytes(h(scalar)).exchange(h(u)) == h(product)


ALICE_PRIVATE = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
ALICE_PUBLIC = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
BOB_PRIVATE = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
BOB_PUBLIC = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"


def test_x25519_agrees_on_the_rfc_7748_shared_secret_from_both_sides() -> None:
    alice, bob = AgreementKey.from_private_bytes(h(ALICE_PRIVATE)), AgreementKey.from_private_bytes(h(BOB_PRIVATE))
    assert alice.public_bytes() == h(ALICE_PUBLIC)
    assert bob.public_bytes() == h(BOB_PUBLIC)
    assert alice.exchange(h(BOB_PUBLIC)) == bob.exchange(h(ALICE_PUBLIC)) == h(SHARED)


@pytest.mark.parametrize("length", [31, 33])
def test_x25519_refuses_keys_of_the_wrong_length(length: int) -> None:
    with pytest.raises(ValueError, match="32"):
        AgreementKey.from_private_bytes(bytes(length))
    with pytest.raises(ValueError, match="32"):
        AgreementKey.from_private_bytes(h(ALICE_PRIVATE)).exchange(bytes(length))


# ----- HKDF-SHA256, RFC 5869 ----------------------------------------------------------------------

HKDF_IKM = bytes([0x0B] * 22)


def test_hkdf_without_salt_or_info_gives_rfc_5869_test_case_3() -> None:
    okm = h("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    assert derive_key(HKDF_IKM, b"", length=42) == okm


def test_hkdf_context_is_the_info_input_and_changes_every_byte() -> None:
    # RFC 5869 test case 1 uses a salt, which derive_key never does, so its output is not
    # comparable; what is checked is that the context enters HKDF and separates keys.
    plain = derive_key(HKDF_IKM, b"", length=32)
    bound = derive_key(HKDF_IKM, h("f0f1f2f3f4f5f6f7f8f9"), length=32)
    assert plain == h("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d")
    assert bound != plain and len(bound) == 32
    assert derive_key(HKDF_IKM, b"job/round/1", length=32) != derive_key(HKDF_IKM, b"job/round/2", length=32)


# ----- Ed25519, RFC 8032 section 7.1 -------------------------------------------------------------

ED25519 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]

# PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410): the form load_signing_key reads.
_PKCS8_ED25519_PREFIX = h("302e020100300506032b657004220420")


def _signing_key_file(tmp_path: Path, seed: bytes) -> Path:
    der = base64.encodebytes(_PKCS8_ED25519_PREFIX + seed).decode()
    path = tmp_path / "signing-key.pem"
    path.write_text(f"-----BEGIN PRIVATE KEY-----\n{der}-----END PRIVATE KEY-----\n")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(("secret", "public", "message", "signature"), ED25519)
def test_ed25519_signs_and_verifies_the_rfc_8032_vectors(
    tmp_path: Path, secret: str, public: str, message: str, signature: str
) -> None:
    key = load_signing_key(_signing_key_file(tmp_path, h(secret)))
    assert key.public_key.raw() == h(public)
    assert key.sign(h(message)) == h(signature)
    key.public_key.verify(h(signature), h(message))
    with pytest.raises(SignatureError):
        key.public_key.verify(h(signature), h(message) + b"\x00")


# ----- AES-256-CTR keystream, NIST SP 800-38A F.5.5 ------------------------------------------------

CTR_KEY = h("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
CTR_FIRST_COUNTER = int("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", 16)
#: The "Output Block" of each of the four blocks: the keystream (encryption of the counter).
CTR_OUTPUT_BLOCKS = [
    "0bdf7df1591716335e9a8b15c860c502",
    "5a6e699d536119065433863c8f657b94",
    "1bc12c9c01610d5d0d8bd6a3378eca62",
    "2956e1c8693536b1bee99c73a31576b6",
]


def _words(blocks: list[str]) -> np.ndarray:
    return np.frombuffer(b"".join(h(b) for b in blocks), dtype="<u4")


def test_the_keystream_is_the_nist_ctr_aes256_output_blocks() -> None:
    first_word = CTR_FIRST_COUNTER * WORDS_PER_BLOCK
    stream = keystream_words(CTR_KEY, first_word, 4 * WORDS_PER_BLOCK)
    assert stream.dtype == np.dtype("<u4")
    np.testing.assert_array_equal(stream, _words(CTR_OUTPUT_BLOCKS))


@pytest.mark.parametrize("block", range(4))
def test_any_block_of_the_keystream_can_be_made_on_its_own(block: int) -> None:
    first_word = (CTR_FIRST_COUNTER + block) * WORDS_PER_BLOCK
    np.testing.assert_array_equal(
        keystream_words(CTR_KEY, first_word, WORDS_PER_BLOCK), _words([CTR_OUTPUT_BLOCKS[block]])
    )


def test_the_keystream_refuses_a_short_key_and_an_unaligned_start() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        keystream_words(CTR_KEY[:16], 0, 4)
    with pytest.raises(ValueError, match="multiple of 4"):
        keystream_words(CTR_KEY, 2, 4)


@pytest.mark.parametrize("slices", [(16,), (1, 3, 5, 7), (6, 2, 8)])
def test_a_keystream_read_slice_by_slice_is_the_nist_output_blocks(slices: tuple[int, ...]) -> None:
    # Slices of any length (even ones that split an AES block) continue the one stream.
    stream = Keystream(CTR_KEY, CTR_FIRST_COUNTER * WORDS_PER_BLOCK)
    scratch = np.empty(16 + Keystream.SLACK_BYTES // 4, dtype="<u4")
    words = []
    for count in slices:
        stream.read_into(memoryview(scratch).cast("B"), count)
        words.append(scratch[:count].copy())
    np.testing.assert_array_equal(np.concatenate(words), _words(CTR_OUTPUT_BLOCKS))


def test_a_keystream_refuses_a_scratch_buffer_without_room_for_the_slice() -> None:
    scratch = memoryview(np.empty(8, dtype="<u4")).cast("B")
    with pytest.raises(ValueError, match="scratch buffer of 48 bytes"):
        Keystream(CTR_KEY).read_into(scratch, 8)
    with pytest.raises(ValueError, match="multiple of 4"):
        Keystream(CTR_KEY, 2)


# ----- AES-256-GCM, GCM specification test cases 13, 14, 16 --------------------------------------

GCM = {
    "13: empty plaintext": ("00" * 32, "00" * 12, "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"),
    "14: one zero block": (
        "00" * 32,
        "00" * 12,
        "00" * 16,
        "",
        "cea7403d4d606b6e074ec5d3baf39d18",
        "d0d1c8a799996bf0265b98b5d48ab919",
    ),
    "16: with associated data": (
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        "76fc6ece0f4e1768cddf8853bb2d551b",
    ),
}


@pytest.mark.parametrize("case", GCM)
def test_a_sealed_blob_is_nonce_ciphertext_tag_and_opens_to_the_published_plaintext(case: str) -> None:
    key, nonce, plaintext, associated, ciphertext, tag = (h(part) for part in GCM[case])
    assert open_sealed(key, nonce + ciphertext + tag, associated) == plaintext


@pytest.mark.parametrize("case", GCM)
def test_a_changed_byte_anywhere_in_the_published_blob_fails_authentication(case: str) -> None:
    key, nonce, _, associated, ciphertext, tag = (h(part) for part in GCM[case])
    blob = bytearray(nonce + ciphertext + tag)
    for index in range(len(blob)):
        changed = bytearray(blob)
        changed[index] ^= 0x01
        with pytest.raises(DecryptionError):
            open_sealed(key, bytes(changed), associated)
    with pytest.raises(DecryptionError):
        open_sealed(key, bytes(blob), associated + b"x")


@pytest.mark.parametrize("case", GCM)
def test_seal_uses_a_fresh_nonce_and_its_blob_opens_again(case: str) -> None:
    key, _, plaintext, associated, _, _ = (h(part) for part in GCM[case])
    first, second = seal(key, plaintext, associated), seal(key, plaintext, associated)
    assert len(first) == 12 + len(plaintext) + 16
    assert first[:12] != second[:12]
    assert open_sealed(key, first, associated) == open_sealed(key, second, associated) == plaintext


def test_a_blob_shorter_than_nonce_and_tag_is_refused() -> None:
    with pytest.raises(DecryptionError, match="too short"):
        open_sealed(bytes(32), bytes(27), b"")
