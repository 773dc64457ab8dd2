"""Stochastic (unbiased) rounding of values in ``[-range, range]`` to ``b``-bit levels, and back.

A value ``v`` maps to the real level ``t = (v + range) * L / (2 range)`` with ``L = 2^b - 1``
and is rounded up with probability ``t - floor(t)``, down otherwise, so ``E[q] = t``: the
rounding adds zero-mean noise of at most one step (``2 range / L``) per value and never a
bias. Values outside the range are clipped first (the silo's error feedback keeps what
clipping and rounding dropped). Sums of levels over ``n`` silos need
``b + ceil(log2 n)`` bits, which is what sizes the masked arithmetic's modulus
(``sum_word_bits``). Called by ``_codec`` on both sides of a round.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

#: Widest word the masked sum is kept in: the masks are 32-bit keystream words reduced mod 2^m.
MAX_WORD_BITS: Final = 32
#: Bit widths a job may quantize to (2: sign-like votes; 16, 8, 4: the usual levels).
MIN_BITS: Final = 2
MAX_BITS: Final = 24


class CompressionError(ValueError):
    """A configuration or payload the compression cannot honour; the message names what to change."""


def levels(bits: int) -> int:
    """The top level ``L = 2^bits - 1`` of a ``bits``-bit quantizer."""
    if not MIN_BITS <= bits <= MAX_BITS:
        raise CompressionError(f"quantization bits must be between {MIN_BITS} and {MAX_BITS}, not {bits}")
    return (1 << bits) - 1


def headroom_bits(silos: int) -> int:
    """Extra bits a sum of ``silos`` words of the same width needs: ``ceil(log2 silos)``."""
    if silos < 1:
        raise CompressionError(f"a sum needs at least one silo, not {silos}")
    return (silos - 1).bit_length()


def sum_word_bits(bits: int, silos: int) -> int:
    """Width of the masked sum's words for ``silos`` silos at ``bits`` bits; refused past ``MAX_WORD_BITS``."""
    width = bits + headroom_bits(silos)
    if width > MAX_WORD_BITS:
        raise CompressionError(
            f"spec.compression.bits {bits} with {silos} silos needs {width}-bit sums, above the masked "
            f"arithmetic's {MAX_WORD_BITS} bits; lower spec.compression.bits to at most "
            f"{MAX_WORD_BITS - headroom_bits(silos)} or name fewer silos"
        )
    return width


def max_silos(bits: int) -> int:
    """The most silos whose ``bits``-bit words still sum inside ``MAX_WORD_BITS`` bits."""
    return 1 << (MAX_WORD_BITS - bits)


def step(bits: int, value_range: float) -> float:
    """The distance between two neighbouring levels: the largest error one rounding adds."""
    return 2.0 * value_range / levels(bits)


def quantize(
    values: npt.NDArray[np.floating], bits: int, value_range: float, rng: np.random.Generator
) -> npt.NDArray[np.uint32]:
    """Each value clipped to ``[-range, range]`` and rounded stochastically to a level in ``0..2^bits-1``."""
    if not value_range > 0 or not math.isfinite(value_range):
        raise CompressionError(f"the quantization range must be a positive number, not {value_range}")
    top = levels(bits)
    real = np.clip(values.astype(np.float64, copy=False), -value_range, value_range)
    real += value_range
    real *= top / (2.0 * value_range)
    floor = np.floor(real)
    # Up with probability equal to the fraction: E[level] is the real level exactly.
    floor += rng.random(real.shape) < (real - floor)
    np.clip(floor, 0, top, out=floor)
    return floor.astype(np.uint32)


def dequantize(words: npt.NDArray[np.unsignedinteger], bits: int, value_range: float) -> npt.NDArray[np.float64]:
    """The values one silo's levels stand for."""
    return words.astype(np.float64) * step(bits, value_range) - value_range


def dequantize_sum(
    total: npt.NDArray[np.unsignedinteger], bits: int, value_range: float, silos: int
) -> npt.NDArray[np.float64]:
    """The sum of the values ``silos`` silos' levels stand for, from the sum of their levels."""
    return total.astype(np.float64) * step(bits, value_range) - silos * value_range
