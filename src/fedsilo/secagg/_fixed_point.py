"""Fixed-point encoding of weighted updates into Z_2^32, and back.

A silo encodes ``round(x * n * 2^f)`` for its clipped update ``x`` and sample count ``n``,
so the sum over silos (mod 2^32) is the FedAvg numerator; ``f`` is chosen by the hub so
no sum can overflow the signed 32-bit range. The weight ``n`` itself rides as one more
coordinate, so the sum also carries the denominator.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

# Keep sums strictly inside int32 and leave headroom for rounding.
_LIMIT = 2**31 - 1
MAX_FRACTIONAL_BITS = 24
#: Values encoded per slice: the float32 temporary stays small whatever the model's size.
ENCODE_SLICE = 1 << 16
#: Words decoded per slice: the float64 temporary is 512 KiB whatever the model's size.
DECODE_SLICE = 1 << 16


class FixedPointError(ValueError):
    """Values that cannot be encoded without overflow."""


def choose_fractional_bits(clip_range: float, total_weight_bound: int) -> int:
    """The most fractional bits ``f`` with ``clip_range * total_weight_bound * 2^f`` below 2^31."""
    if clip_range <= 0 or total_weight_bound <= 0:
        raise FixedPointError("clip range and total weight must be positive")
    bits = math.floor(math.log2(_LIMIT / (clip_range * total_weight_bound)))
    if bits < 1:
        raise FixedPointError(
            f"{total_weight_bound} records with clip range {clip_range} overflow 32-bit fixed point; "
            "lower spec.aggregation.clipRange"
        )
    return min(bits, MAX_FRACTIONAL_BITS)


def check_weight(weight: int, clip_range: float, fractional_bits: int) -> None:
    """Refuse a weight whose largest encoded value would overflow 32 bits (``FixedPointError``)."""
    if weight <= 0 or weight >= _LIMIT:
        raise FixedPointError(f"weight {weight} is outside 1..2^31-2")
    # Clipping bounds every value, so checking the bound is enough (no pass over the data).
    if clip_range * weight * 2.0**fractional_bits >= _LIMIT - 256:
        raise FixedPointError(f"weight {weight} with {fractional_bits} fractional bits overflows 32 bits")


def encode_into(
    values: npt.NDArray[np.floating],
    weight: int,
    clip_range: float,
    fractional_bits: int,
    out: npt.NDArray[np.uint32],
) -> None:
    """``round(clip(x) * weight * 2^f) mod 2^32`` of a slice of values, written into ``out`` (same size).

    Element by element, so encoding a vector slice by slice gives exactly the words encoding
    it whole gives; the only temporary is one float32 copy of the slice.
    """
    check_weight(weight, clip_range, fractional_bits)
    if out.dtype != np.uint32 or out.shape != values.shape:
        raise ValueError(f"{values.size} values encode into {values.size} uint32 words")
    # float32 throughout: the product carries the same 24-bit relative precision the float32
    # update already has, at half the memory traffic of float64.
    scaled = np.clip(values.astype(np.float32, copy=False), -clip_range, clip_range).astype(np.float32, copy=False)
    scaled *= np.float32(float(weight) * 2.0**fractional_bits)
    np.rint(scaled, out=scaled)
    # Written as int32 into the uint32 buffer: two's complement, which is exactly mod 2^32.
    np.copyto(out.view(np.int32), scaled, casting="unsafe")


def encode(
    values: npt.NDArray[np.floating], weight: int, clip_range: float, fractional_bits: int
) -> npt.NDArray[np.uint32]:
    """``[round(clip(x) * weight * 2^f) mod 2^32 ..., weight]`` as uint32, encoded slice by slice."""
    check_weight(weight, clip_range, fractional_bits)
    out = np.empty(values.size + 1, dtype=np.uint32)
    for start in range(0, values.size, ENCODE_SLICE):
        end = start + ENCODE_SLICE
        encode_into(values[start:end], weight, clip_range, fractional_bits, out[start : min(end, values.size)])
    out[-1] = weight
    return out


def decode_sum(total: npt.NDArray[np.uint32], fractional_bits: int) -> tuple[npt.NDArray[np.float64], int]:
    """The float sum of weighted values and the total weight from an unmasked sum."""
    signed = total[:-1].view(np.int32).astype(np.float64)
    signed /= 2.0**fractional_bits  # in place: at 100M parameters a second float64 copy is 800 MB
    return signed, int(total[-1])


def _decoded_slices(
    total: npt.NDArray[np.uint32], fractional_bits: int
) -> Iterator[tuple[slice, npt.NDArray[np.float64]]]:
    """``decode_sum``'s values (the weight word left out), one ``DECODE_SLICE`` at a time, in one reused buffer."""
    words = total[:-1].view(np.int32)
    scratch = np.empty(min(DECODE_SLICE, words.size), dtype=np.float64)
    scale = 2.0**fractional_bits
    for start in range(0, words.size, DECODE_SLICE):
        part = slice(start, min(start + DECODE_SLICE, words.size))
        decoded = scratch[: part.stop - start]
        np.copyto(decoded, words[part], casting="safe")
        # The same two float64 operations as decode_sum's, element by element: the same values.
        decoded /= scale
        yield part, decoded


def decoded_norm(total: npt.NDArray[np.uint32], fractional_bits: int) -> float:
    """The L2 norm of ``decode_sum``'s values, without a float64 copy of the whole sum.

    Summed slice by slice, so it may differ from ``np.linalg.norm`` of the whole decoding in
    the last bits (another order of additions); the norm is compared against a bound with a
    relative slack far above that.
    """
    squares = math.fsum(float(np.dot(decoded, decoded)) for _, decoded in _decoded_slices(total, fractional_bits))
    return math.sqrt(squares)


def decode_mean(total: npt.NDArray[np.uint32], fractional_bits: int, divisor: float) -> npt.NDArray[np.float32]:
    """``decode_sum``'s values divided by ``divisor`` in float64 and rounded to float32, slice by slice.

    Bit for bit what ``(decode_sum(total, f)[0] / divisor).astype(np.float32)`` gives (each
    element goes through the same float64 operations), while the only float64 array is one
    slice: at 100M parameters the whole decoding was 763 MiB beside the 381 MiB mean.
    """
    mean = np.empty(total.size - 1, dtype=np.float32)
    for part, decoded in _decoded_slices(total, fractional_bits):
        decoded /= divisor
        np.copyto(mean[part], decoded, casting="same_kind")
    return mean
