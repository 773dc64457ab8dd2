"""What every party of one secure-aggregation round agrees on, and the key derivations they share.

The aggregator builds a ``SecAggConfig`` from the job spec and the round plan; the sidecar
builds the same one from the plan it receives. Client, server and the local driver read
the silos' Shamir points, the chunking of the masked vector and the HKDF contexts from
here, so both ends derive the same keys by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fedsilo.api import RoundNumber, SiloName
from fedsilo.identity import KEYSTREAM_KEY_BYTES, WORDS_PER_BLOCK, StreamingDigest, derive_key

from ._errors import SecAggError

# 64K words (256 KiB) per chunk: big enough that per-chunk overhead (one AES context per
# key, one message) vanishes, small enough that a chunk and its keystream stay in L2 cache.
DEFAULT_CHUNK_ELEMENTS = 1 << 16
# Shamir points travel as 16-bit integers.
MAX_SILOS = 0xFFFF
_PROTOCOL = b"fedsilo.secagg/v1"


@dataclass(frozen=True)
class SecAggConfig:
    """One round: who takes part, the threshold, and the vector and its encoding.

    ``vector_length`` counts the update's values; the masked vector has one more word,
    the silo's weight (sample count), so the sum carries the FedAvg denominator too.
    """

    job: str
    round: RoundNumber
    silos: tuple[SiloName, ...]
    threshold: int
    vector_length: int
    fractional_bits: int
    clip_range: float
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
    _points: dict[SiloName, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.job:
            raise SecAggError("a secure-aggregation round needs a job name")
        if self.round < 0:
            raise SecAggError(f"round {self.round} is negative")
        if len(set(self.silos)) != len(self.silos) or not all(self.silos):
            raise SecAggError("silo names must be distinct and non-empty")
        if len(self.silos) > MAX_SILOS:
            raise SecAggError(f"at most {MAX_SILOS} silos take part in one round")
        # t = 1 would let any one share reveal a secret; t > n could never unmask.
        if not 2 <= self.threshold <= len(self.silos):
            raise SecAggError(f"threshold {self.threshold} must be between 2 and the {len(self.silos)} silos")
        if self.vector_length < 1:
            raise SecAggError("the update has at least one value")
        if not 0 <= self.fractional_bits <= 31:
            raise SecAggError(f"{self.fractional_bits} fractional bits do not fit 32-bit fixed point")
        if not (math.isfinite(self.clip_range) and self.clip_range > 0):
            raise SecAggError(f"clip range {self.clip_range} must be positive and finite")
        if self.chunk_elements < WORDS_PER_BLOCK or self.chunk_elements % WORDS_PER_BLOCK:
            raise SecAggError(f"chunk_elements must be a positive multiple of {WORDS_PER_BLOCK}")
        # Shamir points follow the sorted silo list, whatever order the job lists them in.
        object.__setattr__(self, "_points", {silo: i + 1 for i, silo in enumerate(sorted(self.silos))})

    @property
    def masked_length(self) -> int:
        """Words in the masked vector: the values and the weight."""
        return self.vector_length + 1

    def x_of(self, silo: SiloName) -> int:
        """The Shamir point of ``silo``: its 1-based position among the sorted silo names."""
        try:
            return self._points[silo]
        except KeyError:
            raise SecAggError(f"{silo!r} is not a silo of job {self.job} round {self.round}") from None

    def is_member(self, silo: str) -> bool:
        """Whether ``silo`` takes part in this round."""
        return silo in self._points

    def chunk_offsets(self) -> range:
        """Where the masked vector's chunks start."""
        return range(0, self.masked_length, self.chunk_elements)

    def chunk_length(self, offset: int) -> int:
        """Words in the chunk starting at ``offset``."""
        return min(self.chunk_elements, self.masked_length - offset)

    def context(self, purpose: str, *silos: SiloName) -> bytes:
        """Length-prefixed binding of a key or signature to this protocol, job, round, purpose and silos."""
        parts = [_PROTOCOL, purpose.encode(), self.job.encode(), str(self.round).encode()]
        parts += [s.encode() for s in silos]
        return b"".join(len(p).to_bytes(2, "big") + p for p in parts)

    def self_mask_key(self, seed: bytes, silo: SiloName) -> bytes:
        """The keystream key of ``silo``'s self mask, from its seed b_u."""
        return derive_key(seed, self.context("self-mask", silo), KEYSTREAM_KEY_BYTES)

    def pairwise_mask_key(self, secret: bytes, a: SiloName, b: SiloName) -> bytes:
        """The keystream key two silos share, from their masking-key agreement; the same from either side."""
        low, high = sorted((a, b))
        return derive_key(secret, self.context("pairwise-mask", low, high), KEYSTREAM_KEY_BYTES)

    def share_key(self, secret: bytes, a: SiloName, b: SiloName) -> bytes:
        """The AES-GCM key for share ciphertexts between two silos, from their encryption-key agreement."""
        low, high = sorted((a, b))
        return derive_key(secret, self.context("share-encryption", low, high))

    def seed_commitment(self, seed: bytes, silo: SiloName) -> bytes:
        """SHA-256 of ``silo``'s self-mask seed, bound to this round: checks the seed the server rebuilds."""
        digest = StreamingDigest()
        digest.update(self.context("seed-commitment", silo))
        digest.update(seed)
        return digest.raw()

    def share_context(self, sender: SiloName, receiver: SiloName) -> bytes:
        """The associated data of a share ciphertext: which round, from whom, to whom."""
        return self.context("share", sender, receiver)
