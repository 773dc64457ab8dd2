"""The job's CKKS parameters, chosen once for 128-bit security, and the SEAL context they make.

Aggregation only adds ciphertexts, so no multiplication depth is needed: one coefficient
modulus prime is enough, which also means no key-switching keys exist for anyone to hold.
Ring degree N = 4096 with log2(q) = 60 is within the HomomorphicEncryption.org security
standard (Albrecht et al., "Homomorphic Encryption Security Standard", Table 1,
classical 128-bit, ternary secret, error sigma = 3.2: N = 4096 allows log2(q) <= 109); SEAL's
own ``tc128`` check enforces the same table when the context is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import tenseal.sealapi as seal

#: The standard's largest log2(q) for 128-bit classical security, by ring degree (Table 1).
MAX_MODULUS_BITS_128 = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}


@dataclass(frozen=True)
class HEParameters:
    """CKKS parameters of a job; every party derives the same context from them.

    ``scale_bits``: the fixed-point scale of an encoded value. ``flooding_std``: the
    standard deviation, in the units of the decoded values, of the noise each silo adds to
    its decryption share (noise flooding; it hides the share's secret-dependent error).
    """

    poly_modulus_degree: int = 4096
    modulus_bits: int = 60
    scale_bits: int = 36
    flooding_std: float = 2.0**-20

    def __post_init__(self) -> None:
        allowed = MAX_MODULUS_BITS_128.get(self.poly_modulus_degree)
        if allowed is None:
            raise ValueError(f"poly_modulus_degree {self.poly_modulus_degree} is not a power of two in 1024..32768")
        if not 20 <= self.modulus_bits <= min(60, allowed):
            raise ValueError(
                f"modulus_bits {self.modulus_bits} is outside 20..{min(60, allowed)} "
                f"(128-bit security allows {allowed} bits at N = {self.poly_modulus_degree}; SEAL at most 60 per prime)"
            )
        if not 10 <= self.scale_bits <= self.modulus_bits - 12:
            raise ValueError(f"scale_bits {self.scale_bits} must be within 10..modulus_bits - 12")
        if not 0.0 < self.flooding_std < 1.0:
            raise ValueError(f"flooding_std {self.flooding_std} must be within (0, 1)")

    @property
    def slots(self) -> int:
        """Real values one ciphertext carries (N / 2)."""
        return self.poly_modulus_degree // 2

    @property
    def scale(self) -> float:
        """The fixed-point scale 2**scale_bits."""
        return float(2**self.scale_bits)

    def max_sum_magnitude(self) -> float:
        """The largest |value| a *sum* may reach and still decode: scale * |sum| stays below q / 8."""
        return float(2 ** (self.modulus_bits - 3 - self.scale_bits))

    def error_bound(self, silos: int) -> float:
        """The bound on |decoded sum - true sum| per value that tests and docs state, for ``silos`` shares.

        Dominated by the flooding noise: each silo adds a normal of ``flooding_std`` to every
        value, so the sum's error is normal with ``flooding_std * sqrt(silos)``; 8 of those
        (exceeded with probability below 1e-15 per value) plus the encoding's rounding,
        measured below 2**-26 at scale 2**36 (docs/homomorphic.md).
        """
        return 8.0 * self.flooding_std * math.sqrt(silos) + 2.0 ** (10 - self.scale_bits)

    def chunks(self, length: int) -> int:
        """Ciphertexts a vector of ``length`` values needs."""
        return max(1, math.ceil(length / self.slots))

    @cached_property
    def context(self) -> seal.SEALContext:
        """SEAL's context for these parameters (128-bit security checked by SEAL as well)."""
        parms = seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS)
        parms.set_poly_modulus_degree(self.poly_modulus_degree)
        parms.set_coeff_modulus(seal.CoeffModulus.Create(self.poly_modulus_degree, [self.modulus_bits]))
        context = seal.SEALContext(parms, True, seal.SEC_LEVEL_TYPE.TC128)
        if not context.parameters_set():
            raise ValueError(f"SEAL refuses these parameters: {self}")
        return context

    @cached_property
    def modulus(self) -> int:
        """The prime q."""
        return int(self.context.key_context_data().parms().coeff_modulus()[0].value())
