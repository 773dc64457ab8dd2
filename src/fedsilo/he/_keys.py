"""Per-job multiparty CKKS keys: each silo's secret share, its public share, and the joint key.

The joint secret is s = s_1 + ... + s_n; no party ever holds it. Each silo's sidecar draws
its own ternary s_i with SEAL's key generator and publishes only b_i = -a * s_i + e_i, where
``a`` is a common uniform polynomial every party expands from the ceremony's public seed and
e_i is SEAL's own Gaussian error. The joint public key is (b_1 + ... + b_n, a): an ordinary
SEAL public key for s, so SEAL's public-key encryption serves every silo. Every silo
recomputes the joint key from the signed shares itself, so a hub that relayed a key of
its own making would be caught (Mouchet et al., "Multiparty Homomorphic Encryption from
Ring-Learning-With-Errors", PETS 2021, section 4; the same protocol OpenFHE's ``MultipartyKeyGen``
runs).

Who calls it: the sidecar (``KeyShare``), the aggregator and every sidecar
(``joint_public_key``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import numpy as np
import tenseal.sealapi as seal

from ._errors import CiphertextRejected, RejectionKind
from ._params import HEParameters
from ._seal import Words, coefficients, load, to_bytes, with_coefficients

#: Domain separation of the common polynomial's expansion.
_CRS_DOMAIN = b"fedsilo/he/crs/v1"


def round_seed(job: str, round_number: int, model_digest: str) -> bytes:
    """The ceremony's public seed, which every party derives alone: no one, the hub included, chooses ``a``."""
    return hashlib.sha256(f"fedsilo/he/seed/v1\0{job}\0{round_number}\0{model_digest}".encode()).digest()


def common_polynomial(params: HEParameters, seed: bytes) -> Words:
    """The uniform polynomial ``a`` (NTT form) every party expands from the ceremony's public seed.

    SHAKE-256 output read as 64-bit words, cut to the modulus's bit length and rejected at or
    above q: exactly uniform mod q. A uniform polynomial is uniform in NTT form as well (the
    NTT is a bijection), so it is drawn there directly.
    """
    if len(seed) != 32:
        raise ValueError(f"the ceremony seed must be 32 bytes, got {len(seed)}")
    degree, q = params.poly_modulus_degree, params.modulus
    mask = np.uint64((1 << q.bit_length()) - 1)
    out = np.empty(0, dtype=np.uint64)
    counter = 0
    while out.size < degree:
        block = hashlib.shake_256(_CRS_DOMAIN + seed + counter.to_bytes(4, "little")).digest(degree * 8)
        words = np.frombuffer(block, dtype="<u8") & mask
        out = np.concatenate([out, words[words < np.uint64(q)]])
        counter += 1
    return out[:degree].reshape(1, 1, degree)


def _template_ciphertext(params: HEParameters) -> seal.Ciphertext:
    """Any valid two-part ciphertext at the data level: the shape ``with_coefficients`` fills in."""
    throwaway = seal.KeyGenerator(params.context).secret_key()
    ciphertext = seal.Ciphertext()
    seal.Encryptor(params.context, throwaway).encrypt_zero_symmetric(ciphertext)
    return ciphertext


def template_plaintext(params: HEParameters) -> seal.Plaintext:
    plain = seal.Plaintext()
    seal.CKKSEncoder(params.context).encode([0.0], params.scale, plain)
    return plain


def seal_error(params: HEParameters) -> Words:
    """A fresh RLWE error polynomial (NTT form) drawn by SEAL's own sampler (sigma 3.2, its CSPRNG).

    SEAL draws the error only inside encryption, so this encrypts zero under a throwaway key
    and decrypts it: what is left is exactly the error, in NTT form.
    """
    throwaway = seal.KeyGenerator(params.context).secret_key()
    ciphertext = seal.Ciphertext()
    seal.Encryptor(params.context, throwaway).encrypt_zero_symmetric(ciphertext)
    plain = seal.Plaintext()
    seal.Decryptor(params.context, throwaway).decrypt(ciphertext, plain)
    return coefficients(plain, 1, params.poly_modulus_degree, 1)


def sub_mod(x: Words, y: Words, q: int) -> Words:
    """(x - y) mod q for coefficients already reduced mod q (< 2**60: no overflow in uint64)."""
    modulus = np.uint64(q)
    return np.where(x >= y, x - y, x + (modulus - y))


def add_mod(x: Words, y: Words, q: int) -> Words:
    """(x + y) mod q for coefficients already reduced mod q."""
    total = x + y
    return np.where(total >= np.uint64(q), total - np.uint64(q), total)


def share_digest(share: bytes) -> str:
    """The digest a silo signs for its public share (and the hub and peers check)."""
    return "sha256:" + hashlib.sha256(share).hexdigest()


class KeyShare:
    """One silo's part of the job's key: the secret share (never leaves this object) and its public share.

    Made by the sidecar when the job's ceremony starts; lost with the process, which is why a
    restarted sidecar takes part in a new ceremony rather than the old key.
    """

    def __init__(self, params: HEParameters, seed: bytes) -> None:
        self.params = params
        context = params.context
        self._secret = seal.KeyGenerator(context).secret_key()
        self._decryptor = seal.Decryptor(context, self._secret)
        a = common_polynomial(params, seed)
        template = _template_ciphertext(params)
        # Decrypting (0, a) with s_i yields a * s_i exactly (CKKS decryption does not round).
        a_times_s = self._partial(with_coefficients(template, context, np.concatenate([np.zeros_like(a), a])))
        b = add_mod(sub_mod(np.zeros_like(a_times_s), a_times_s, params.modulus), seal_error(params), params.modulus)
        self.public_share: bytes = to_bytes(with_coefficients(template_plaintext(params), context, b))

    def _partial(self, ciphertext: seal.Ciphertext) -> Words:
        """c0 + c1 * s_i of a ciphertext, in NTT form (the raw decryption with this share only)."""
        plain = seal.Plaintext()
        self._decryptor.decrypt(ciphertext, plain)
        return coefficients(plain, 1, self.params.poly_modulus_degree, 1)

    def decrypt_alone(self, ciphertext: seal.Ciphertext) -> seal.Plaintext:
        """What this share alone makes of a ciphertext: noise, unless it were the whole key (tests show it is not)."""
        plain = seal.Plaintext()
        self._decryptor.decrypt(ciphertext, plain)
        return plain

    def raw_partial(self, ciphertext: seal.Ciphertext, c0: Words) -> Words:
        """c1 * s_i (NTT form): the secret-dependent part of a decryption share, before flooding.

        ``c0`` is the ciphertext's first polynomial (read once by the caller from the loaded bytes).
        """
        return sub_mod(self._partial(ciphertext), c0, self.params.modulus)

    def __repr__(self) -> str:
        return f"KeyShare(params={self.params!r}, public_share={share_digest(self.public_share)})"


def load_public_share(params: HEParameters, share: bytes) -> Words:
    """A silo's public share b_i as coefficients, through SEAL's checked loader (bounded size)."""
    bound = params.poly_modulus_degree * 8 + 4096
    plain = load(seal.Plaintext(), params.context, share, bound)
    if not plain.is_ntt_form() or plain.coeff_count() != params.poly_modulus_degree:
        raise CiphertextRejected(RejectionKind.MALFORMED, "a public share must be one NTT-form polynomial of degree N")
    if plain.parms_id() != params.context.first_parms_id():
        raise CiphertextRejected(RejectionKind.MALFORMED, "the public share is for other parameters")
    return coefficients(plain, 1, params.poly_modulus_degree, 1)


class JointKey:
    """The joint public key, assembled from every silo's public share and the common polynomial.

    ``key_id`` names it: the digest of the seed and the shares in silo order, what every
    chunk's signed metadata carries so the hub can refuse a chunk made for another key.
    """

    def __init__(self, params: HEParameters, seed: bytes, shares: Mapping[str, bytes]) -> None:
        if not shares:
            raise ValueError("a joint key needs at least one public share")
        self.params = params
        self.silos = tuple(sorted(shares))
        a = common_polynomial(params, seed)
        b = np.zeros_like(a)
        for silo in self.silos:
            b = add_mod(b, load_public_share(params, shares[silo]), params.modulus)
        keygen_template = seal.PublicKey()
        seal.KeyGenerator(params.context).create_public_key(keygen_template)
        self.public_key = with_coefficients(keygen_template, params.context, np.concatenate([b, a]))
        self.key_id = key_id(seed, ((silo, shares[silo]) for silo in self.silos))

    def encryptor(self) -> seal.Encryptor:
        """SEAL's public-key encryptor for the joint key."""
        return seal.Encryptor(self.params.context, self.public_key)


def key_id(seed: bytes, shares: Iterable[tuple[str, bytes]]) -> str:
    """The joint key's name: SHA-256 over the seed and (silo, share digest) in silo order."""
    digest = hashlib.sha256(b"fedsilo/he/key/v1" + seed)
    for silo, share in sorted(shares):
        digest.update(silo.encode() + b"\0" + share_digest(share).encode() + b"\0")
    return "sha256:" + digest.hexdigest()
