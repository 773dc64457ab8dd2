"""Exact wide fixed-point totals in Z_2^32 words, so masked sums of counts and moments lose nothing.

Secure aggregation adds uint32 words mod 2^32. A sum of squares of a feature on the scale
of 1e4 over a million records needs far more than 32 bits, so each value is encoded as a
signed integer ``round(v * 2^FRACTION_BITS)`` of ``LIMBS * LIMB_BITS`` bits, split into
16-bit limbs, one limb per word. A word then holds at most 2^16 - 1 per silo, so a sum over
up to 2^16 silos never wraps a word; decoding recombines the limbs with their carries in
Python integers, exactly. Counts are whole numbers and come back exactly; sums carry only
the rounding of each value to 2^-32.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import numpy.typing as npt

LIMB_BITS = 16
LIMBS = 8
FRACTION_BITS = 32
#: Most silos whose words can be summed without a word wrapping around.
MAX_SILOS = 2**LIMB_BITS
_WIDTH = LIMB_BITS * LIMBS
_MODULUS = 1 << _WIDTH
#: Largest magnitude one encoded value (or total) may have.
MAX_MAGNITUDE = float(2 ** (_WIDTH - 1 - FRACTION_BITS))


class WideOverflow(ValueError):
    """A value too large for the wide encoding; the message names its position."""


def encode_wide(values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint32]:
    """``LIMBS`` words per value: the 16-bit limbs of ``round(v * 2^FRACTION_BITS) mod 2^(16 LIMBS)``."""
    words = np.zeros(values.size * LIMBS, dtype=np.uint32)
    mask = (1 << LIMB_BITS) - 1
    for index, value in enumerate(values.astype(np.float64)):
        if not abs(value) < MAX_MAGNITUDE:
            raise WideOverflow(f"value {index} ({value!r}) is outside the wide encoding's range ±{MAX_MAGNITUDE:g}")
        # Scaling by a power of two is exact in binary floating point; round() then gives the exact integer.
        integer = round(float(np.ldexp(value, FRACTION_BITS))) % _MODULUS
        for limb in range(LIMBS):
            words[index * LIMBS + limb] = (integer >> (limb * LIMB_BITS)) & mask
    return words


def decode_wide(words: npt.NDArray[np.uint32]) -> list[Fraction]:
    """The exact totals from summed words (carries between limbs recombined), as fractions."""
    if words.size % LIMBS:
        raise ValueError(f"{words.size} words are not whole values of {LIMBS} limbs")
    totals = []
    for start in range(0, words.size, LIMBS):
        integer = sum(int(words[start + limb]) << (limb * LIMB_BITS) for limb in range(LIMBS)) % _MODULUS
        if integer >= _MODULUS // 2:
            integer -= _MODULUS
        totals.append(Fraction(integer, 1 << FRACTION_BITS))
    return totals
