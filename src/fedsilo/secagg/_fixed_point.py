"""Fixed-point encoding of weighted updates into Z_2^32, and back.

A silo encodes ``round(clip(x) * n * 2^f)`` for its update ``x`` and sample count ``n``
(two's complement, so the sum over silos mod 2^32 is the FedAvg numerator), and ``n``
itself as one more word (the denominator). The hub picks ``f`` per round with
``choose_fractional_bits`` so the sum of every admitted input stays inside int32.
The client encodes chunk by chunk with ``encode_chunk``; ``encode`` is the same
arithmetic over a whole vector, for checks.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from ._errors import SecAggError

INT32_MAX = 2**31 - 1
# The scaled product is computed in float32, whose rounding can push a value up by a
# relative 2^-23 at most; the bound keeps a 2^-22 margin for it.
_FLOAT32_SLACK = 1.0 + 2.0**-22


class FixedPointError(SecAggError):
    """Values that cannot be encoded (or a sum that cannot be decoded) without overflow."""


def fits(clip_range: float, total_weight: int, fractional_bits: int) -> bool:
    """Whether any inputs of ``total_weight`` records, clipped to ``clip_range``, sum inside int32.

    Each silo's value is at most ``clip * n * 2^f`` (with float32 slack) plus 1/2 for
    rounding, and each silo weighs at least 1, so ``total_weight / 2`` bounds the rounding.
    """
    if total_weight > INT32_MAX:
        return False
    return clip_range * total_weight * 2.0**fractional_bits * _FLOAT32_SLACK + total_weight / 2 + 1 <= INT32_MAX


def choose_fractional_bits(clip_range: float, total_weight_bound: int) -> int:
    """The most fractional bits ``f`` for which inputs totalling ``total_weight_bound`` records cannot overflow."""
    if not (math.isfinite(clip_range) and clip_range > 0) or total_weight_bound < 1:
        raise FixedPointError("the clip range and the total weight bound must be positive")
    if not fits(clip_range, total_weight_bound, 0):
        raise FixedPointError(
            f"{total_weight_bound} records with clip range {clip_range} overflow 32-bit fixed point even "
            "without fractional bits; lower spec.aggregation.clipRange"
        )
    bits = 0
    while bits < 31 and fits(clip_range, total_weight_bound, bits + 1):
        bits += 1
    return bits


def weight_scale(weight: int, clip_range: float, fractional_bits: int, silos: int) -> np.float32:
    """The float32 factor ``n * 2^f`` of one silo's values, after checking the weight."""
    # Capping each weight at INT32_MAX / silos keeps the weight word's sum from wrapping,
    # so the decoded total weight is the true one.
    if not 1 <= weight <= INT32_MAX // silos:
        raise FixedPointError(f"weight {weight} is outside 1..{INT32_MAX // silos} for {silos} silos")
    if not fits(clip_range, weight, fractional_bits):
        raise FixedPointError(
            f"weight {weight} with clip range {clip_range} and {fractional_bits} fractional bits overflows 32 bits"
        )
    return np.float32(weight * 2.0**fractional_bits)


def encode_chunk(
    values: npt.NDArray[np.floating],
    scale: np.float32,
    clip_range: float,
    scratch: npt.NDArray[np.float32],
    out: npt.NDArray[np.uint32],
) -> None:
    """``out = round(clip(values) * scale) mod 2^32``, through a float32 ``scratch`` of the same length."""
    # Scaling before clipping to the scaled bound gives the same float32 results as
    # clipping first (rounding is monotone) and saves a pass.
    np.multiply(values, scale, out=scratch, dtype=np.float32)
    bound = np.float32(clip_range) * scale
    np.clip(scratch, -bound, bound, out=scratch)
    # Clipping maps infinities to the bound but keeps NaN; a NaN makes the sum NaN, and
    # the sum cannot overflow float32 (each term is below 2^31): one cheap pass.
    if math.isnan(float(np.add.reduce(scratch, dtype=np.float32))):
        raise FixedPointError("the update holds NaN values")
    np.rint(scratch, out=scratch)
    # Written as int32 into the uint32 buffer: two's complement, which is exactly mod 2^32.
    np.copyto(out.view(np.int32), scratch, casting="unsafe")


def encode(
    values: npt.NDArray[np.floating], weight: int, clip_range: float, fractional_bits: int, silos: int
) -> npt.NDArray[np.uint32]:
    """``[round(clip(x) * weight * 2^f) mod 2^32 ..., weight]``: what one silo's input means in Z_2^32."""
    flat = values.reshape(-1)
    scale = weight_scale(weight, clip_range, fractional_bits, silos)
    out = np.empty(flat.size + 1, dtype=np.uint32)
    encode_chunk(flat, scale, clip_range, np.empty(flat.size, dtype=np.float32), out[:-1])
    out[-1] = weight
    return out


def decode_sum(
    total: npt.NDArray[np.uint32], clip_range: float, fractional_bits: int
) -> tuple[npt.NDArray[np.float64], int]:
    """The float sum of weighted values and the total weight from an unmasked sum."""
    weight = int(total[-1])
    if not fits(clip_range, weight, fractional_bits):
        raise FixedPointError(
            f"the admitted inputs total {weight} records, more than {fractional_bits} fractional bits allow "
            "with this clip range: the sum may have wrapped; the hub must choose fewer fractional bits"
        )
    return total[:-1].view(np.int32) / 2.0**fractional_bits, weight
