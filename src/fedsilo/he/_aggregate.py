"""Encrypting an update in chunks, adding chunks on the hub, decryption shares and their fusion.

Sans-IO: bytes in, bytes out; the sidecar and the aggregator carry them over gRPC. The flow:

1. a sidecar encrypts its clipped, weighted update under the joint key
   (``encrypt_update``: one ciphertext per ``slots`` values, each SEAL-serialized);
2. the hub adds the admitted chunks index by index (``EncryptedSum``), loading each through
   SEAL's checked loader with a size bound and checking its shape and level;
3. every silo whose share is in the joint key makes a decryption share of each summed chunk
   (``KeyShare`` + ``decryption_share``): c1 * s_i plus flooding noise;
4. the hub fuses the shares (``fuse``): c0 + sum of shares decodes to the sum of the updates
   plus the silos' flooding noise. The hub learns the sum, as in masked mode; no party
   alone learns anything more.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import tenseal.sealapi as seal

from ._errors import CiphertextRejected, RejectionKind
from ._keys import JointKey, KeyShare, add_mod, template_plaintext
from ._params import HEParameters
from ._seal import CoefficientWriter, Words, coefficients, load_with_coefficients, to_bytes


def chunk_bound(params: HEParameters) -> int:
    """The most bytes one serialized ciphertext chunk may have: two polynomials plus SEAL's header slack."""
    return 2 * params.poly_modulus_degree * 8 + 4096


def encrypt_update(params: HEParameters, key: JointKey, values: npt.NDArray[np.floating]) -> list[bytes]:
    """Encrypt a flat vector under the joint key: one SEAL ciphertext per ``params.slots`` values.

    The vector must already be clipped and weighted; its magnitude is bounded so that the
    sum of every silo's chunk still decodes (``HEParameters.max_sum_magnitude``), which the
    caller divides among the silos.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0 or not np.all(np.isfinite(flat)):
        raise ValueError("an update to encrypt must be a non-empty vector of finite values")
    largest = float(np.max(np.abs(flat)))
    if largest > params.max_sum_magnitude():
        raise ValueError(
            f"a value of magnitude {largest:g} is above max_sum_magnitude {params.max_sum_magnitude():g}: "
            "scale the weighted update down so the sum of every silo's stays below it"
        )
    encoder = seal.CKKSEncoder(params.context)
    encryptor = key.encryptor()
    chunks = []
    for start in range(0, flat.size, params.slots):
        plain = seal.Plaintext()
        encoder.encode(flat[start : start + params.slots].tolist(), params.scale, plain)
        ciphertext = seal.Ciphertext()
        encryptor.encrypt(plain, ciphertext)
        chunks.append(to_bytes(ciphertext))
    return chunks


def load_chunk(params: HEParameters, data: bytes) -> seal.Ciphertext:
    """One ciphertext chunk from another party (see ``load_chunk_with_c0``)."""
    return load_chunk_with_c0(params, data)[0]


def load_chunk_with_c0(params: HEParameters, data: bytes) -> tuple[seal.Ciphertext, Words]:
    """One ciphertext chunk from another party: bounded, SEAL-checked, and of the job's shape.

    A fresh encryption under the joint key is two NTT-form polynomials at the data level with
    the job's scale; anything else is malformed (a different scale would decode the sum
    wrong, a third polynomial would need a key nobody has).
    """
    degree = params.poly_modulus_degree
    ciphertext, words = load_with_coefficients(
        seal.Ciphertext(), params.context, data, chunk_bound(params), (2, 1, degree)
    )
    if ciphertext.size() != 2 or not ciphertext.is_ntt_form():
        raise CiphertextRejected(RejectionKind.MALFORMED, "a chunk must be two NTT-form polynomials")
    if ciphertext.parms_id() != params.context.first_parms_id():
        raise CiphertextRejected(RejectionKind.MALFORMED, "the chunk is for other parameters or another level")
    if ciphertext.scale != params.scale:
        raise CiphertextRejected(RejectionKind.MALFORMED, f"the chunk's scale {ciphertext.scale} is not the job's")
    return ciphertext, words[:1]


@dataclass(frozen=True)
class CheckedChunks:
    """One update's chunks after ``EncryptedSum.check``: loaded by SEAL, ready to add."""

    ciphertexts: tuple[seal.Ciphertext, ...]


class EncryptedSum:
    """The hub's running sum of admitted updates, chunk by chunk; it never holds a key.

    An update's chunks are all loaded and checked (``check``) before any is added, so a
    refused update leaves the sum as it was; the aggregator checks before the policy decides
    and adds (``add_checked``) only after it allowed.
    """

    def __init__(self, params: HEParameters, chunks: int) -> None:
        if chunks < 1:
            raise ValueError("an encrypted sum has at least one chunk")
        self.params = params
        self.chunk_count = chunks
        self._evaluator = seal.Evaluator(params.context)
        self._sum: list[seal.Ciphertext] | None = None
        self.count = 0

    def check(self, chunks: Sequence[bytes]) -> CheckedChunks:
        """One update's chunks loaded and checked (``load_chunk``), or ``CiphertextRejected``; the sum is untouched."""
        if len(chunks) != self.chunk_count:
            raise CiphertextRejected(
                RejectionKind.MALFORMED, f"{len(chunks)} chunks where the job's vector needs {self.chunk_count}"
            )
        return CheckedChunks(tuple(load_chunk(self.params, data) for data in chunks))

    def add_checked(self, checked: CheckedChunks) -> None:
        """Add chunks ``check`` returned."""
        if self._sum is None:
            self._sum = list(checked.ciphertexts)
        else:
            for total, chunk in zip(self._sum, checked.ciphertexts, strict=True):
                self._evaluator.add_inplace(total, chunk)
        self.count += 1

    def add(self, chunks: Sequence[bytes]) -> None:
        """Check and add one update's chunks; a refused update leaves the sum as it was."""
        self.add_checked(self.check(chunks))

    def chunks(self) -> list[bytes]:
        """The summed chunks, serialized: what every silo of the joint key makes a decryption share of."""
        if self._sum is None:
            raise ValueError("no update was added to the sum")
        return [to_bytes(total) for total in self._sum]


def _gaussian(count: int, std: float) -> npt.NDArray[np.float64]:
    """``count`` normal samples from the operating system's CSPRNG (Box-Muller over os.urandom)."""
    words = np.frombuffer(os.urandom(16 * count), dtype="<u8").reshape(2, count)
    u1 = (words[0] >> np.uint64(11)).astype(np.float64) * 2.0**-53 + 2.0**-54
    u2 = (words[1] >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.asarray(np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2) * std, dtype=np.float64)


def decryption_share(share: KeyShare, summed: Sequence[bytes]) -> list[bytes]:
    """This silo's decryption share of every summed chunk: c1 * s_i plus flooding noise, per chunk.

    The flooding noise is a fresh encoding of normal values of ``flooding_std`` (in decoded
    units): it dominates the share's secret-dependent error, so the fused result does not
    expose s_i's error terms (noise flooding, as in OpenFHE's multiparty CKKS). Each share is
    one NTT-form polynomial in SEAL's uncompressed serialization.
    """
    params = share.params
    degree = params.poly_modulus_degree
    encoder = seal.CKKSEncoder(params.context)
    writer = CoefficientWriter(template_plaintext(params), params.context, degree)
    out = []
    for data in summed:
        ciphertext, c0 = load_chunk_with_c0(params, data)
        noise_plain = seal.Plaintext()
        encoder.encode(_gaussian(params.slots, params.flooding_std).tolist(), params.scale, noise_plain)
        noise = coefficients(noise_plain, 1, degree, 1)
        out.append(writer.to_bytes(add_mod(share.raw_partial(ciphertext, c0), noise, params.modulus)))
    return out


def _load_share_chunk(params: HEParameters, data: bytes) -> Words:
    degree = params.poly_modulus_degree
    plain, words = load_with_coefficients(seal.Plaintext(), params.context, data, degree * 8 + 4096, (1, 1, degree))
    if not plain.is_ntt_form() or plain.coeff_count() != degree:
        raise CiphertextRejected(RejectionKind.MALFORMED, "a decryption share must be one NTT-form polynomial")
    if plain.parms_id() != params.context.first_parms_id():
        raise CiphertextRejected(RejectionKind.MALFORMED, "the decryption share is for other parameters")
    return words


def fuse(
    params: HEParameters, summed: Sequence[bytes], shares: Mapping[str, Sequence[bytes]], length: int
) -> npt.NDArray[np.float64]:
    """Decode the sum from the summed chunks and every silo's decryption shares (c0 + sum of shares).

    Needs the share of every silo in the joint key: with one missing, what decodes is noise.
    """
    if not shares:
        raise ValueError("fusion needs decryption shares")
    if not 0 < length <= len(summed) * params.slots:
        raise ValueError(f"length {length} does not fit {len(summed)} chunks")
    for silo, chunks in shares.items():
        if len(chunks) != len(summed):
            raise CiphertextRejected(
                RejectionKind.MALFORMED, f"silo {silo} sent {len(chunks)} decryption shares for {len(summed)} chunks"
            )
    encoder = seal.CKKSEncoder(params.context)
    writer = CoefficientWriter(template_plaintext(params), params.context, params.poly_modulus_degree)
    values: list[npt.NDArray[np.float64]] = []
    for index, data in enumerate(summed):
        total = load_chunk_with_c0(params, data)[1]
        for chunks in shares.values():
            total = add_mod(total, _load_share_chunk(params, chunks[index]), params.modulus)
        plain = writer.to_object(total)
        values.append(np.asarray(encoder.decode_double(plain), dtype=np.float64))
    return np.concatenate(values)[:length]


def decode_with(
    params: HEParameters, shares: Iterable[KeyShare], summed: Sequence[bytes], length: int
) -> npt.NDArray[np.float64]:
    """Every step after the sum for a set of key shares held in one place (tests and benchmarks)."""
    return fuse(params, summed, {str(i): decryption_share(s, summed) for i, s in enumerate(shares)}, length)
