"""One round's compression of one update, silo side and hub side, over ``RoundCompression``.

Silo side (the sidecar's compress step): the update ``x`` plus the error-feedback residual
becomes either masked mode's words (levels of ``x * w / W`` on the round's subset, ready to
be masked and packed; ``W`` is the round's weight scale, so every silo's value stays in the
range and the sum of levels in the modulus) or plain mode's payload
(``[weight][indices][values]``). Each returns what the silo's residual becomes if the
update goes out. Hub side: the masked sum of levels back to ``sum_i w_i x_i``, and a plain
payload back to ``x`` and its weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fedsilo.protocol import RoundCompression

from ._packing import low_bits, pack_words, packed_size, unpack_words
from ._quantize import CompressionError, dequantize, dequantize_sum, quantize
from ._subset import subset_indices, top_k_indices

FloatArray = npt.NDArray[np.float64]
_WEIGHT = np.dtype("<f4")
_INDEX = np.dtype("<u4")
_VALUE = np.dtype("<f4")


def coordinates(settings: RoundCompression, length: int) -> npt.NDArray[np.uint32] | None:
    """The round's shared subset (sorted), or None when every coordinate is sent."""
    if settings.subset_size == 0:
        return None
    return subset_indices(settings.subset_seed, settings.subset_offset, settings.subset_size, length)


def words_sent(settings: RoundCompression, length: int) -> int:
    """Values one silo sends this round."""
    return settings.top_k or settings.subset_size or length


@dataclass(frozen=True)
class Compressed:
    """One silo's compressed update and the residual error feedback keeps if it goes out."""

    # Masked mode: levels to mask (uint32, below 2^bits). Plain mode: the payload bytes.
    data: npt.NDArray[np.generic]
    residual: FloatArray


def masked_levels(
    update: npt.NDArray[np.floating],
    residual: FloatArray | None,
    weight: int,
    settings: RoundCompression,
    rng: np.random.Generator,
) -> Compressed:
    """Levels of ``(x + residual) * weight / W`` on the round's subset, and the new residual."""
    if settings.bits == 0:
        raise CompressionError("masked mode compresses by quantizing: the round must set bits")
    if not 0 < weight <= settings.weight_scale:
        raise CompressionError(f"weight {weight} is outside 1..{settings.weight_scale} (the round's weight scale)")
    wanted = _with_residual(update, residual)
    chosen = coordinates(settings, wanted.size)
    values = wanted if chosen is None else wanted[chosen]
    scale = weight / settings.weight_scale
    levels = quantize(values * scale, settings.bits, settings.value_range, rng)
    sent = dequantize(levels, settings.bits, settings.value_range) / scale
    return Compressed(levels, _residual(wanted, chosen, sent))


def masked_total(total: npt.NDArray[np.uint32], silos: int, settings: RoundCompression, length: int) -> FloatArray:
    """``sum_i w_i x_i`` over the ``silos`` counted silos from the unmasked sum of their levels."""
    words = total & low_bits(settings.word_bits)
    values = dequantize_sum(words, settings.bits, settings.value_range, silos) * settings.weight_scale
    chosen = coordinates(settings, length)
    if chosen is None:
        return values
    full = np.zeros(length, dtype=np.float64)
    full[chosen] = values
    return full


def plain_payload(
    update: npt.NDArray[np.floating],
    residual: FloatArray | None,
    weight: int,
    settings: RoundCompression,
    rng: np.random.Generator,
) -> Compressed:
    """Plain mode's payload ``[weight f32][indices u32 (top-k)][values]`` and the new residual."""
    wanted = _with_residual(update, residual)
    if settings.top_k:
        chosen: npt.NDArray[np.uint32] | None = top_k_indices(wanted, settings.top_k)
    else:
        chosen = coordinates(settings, wanted.size)
    values = wanted if chosen is None else wanted[chosen]
    if settings.bits:
        levels = quantize(values, settings.bits, settings.value_range, rng)
        sent = dequantize(levels, settings.bits, settings.value_range)
        body = pack_words(levels, settings.bits).tobytes()
    else:
        floats = values.astype(_VALUE)
        sent = floats.astype(np.float64)
        body = floats.tobytes()
    head = np.array([weight], dtype=_WEIGHT).tobytes()
    if settings.top_k:
        assert chosen is not None
        head += chosen.astype(_INDEX).tobytes()
    return Compressed(np.frombuffer(head + body, dtype=np.uint8), _residual(wanted, chosen, sent))


def plain_payload_size(settings: RoundCompression, length: int) -> int:
    """Bytes of a plain compressed payload for a model of ``length`` coordinates."""
    count = words_sent(settings, length)
    body = packed_size(count, settings.bits) if settings.bits else count * _VALUE.itemsize
    return _WEIGHT.itemsize + (count * _INDEX.itemsize if settings.top_k else 0) + body


def masked_payload_size(settings: RoundCompression, length: int) -> int:
    """Bytes of a masked compressed payload: the round's words, packed at ``word_bits``."""
    return packed_size(words_sent(settings, length), settings.word_bits)


def read_plain_payload(
    data: npt.NDArray[np.uint8], settings: RoundCompression, length: int
) -> tuple[FloatArray, float]:
    """A plain compressed payload back to the update ``x`` (every coordinate) and its weight."""
    expected = plain_payload_size(settings, length)
    if data.size != expected:
        raise CompressionError(f"the compressed payload has {data.size} bytes, the round's settings give {expected}")
    raw = data.tobytes()
    weight = float(np.frombuffer(raw[: _WEIGHT.itemsize], dtype=_WEIGHT)[0])
    position = _WEIGHT.itemsize
    count = words_sent(settings, length)
    if settings.top_k:
        chosen: npt.NDArray[np.uint32] | None = np.frombuffer(
            raw[position : position + count * _INDEX.itemsize], dtype=_INDEX
        ).astype(np.uint32)
        position += count * _INDEX.itemsize
        assert chosen is not None
        # Signed differences: uint32 ones would wrap a decrease around to a large increase.
        steps = np.diff(chosen.astype(np.int64))
        if chosen.size and (int(chosen.max()) >= length or not (steps > 0).all()):
            raise CompressionError("top-k indices must be strictly increasing coordinates of the model")
    else:
        chosen = coordinates(settings, length)
    body = np.frombuffer(raw[position:], dtype=np.uint8)
    if settings.bits:
        values = dequantize(unpack_words(body, settings.bits, count), settings.bits, settings.value_range)
    else:
        values = body.view(_VALUE).astype(np.float64)
        if not np.isfinite(values).all():
            raise CompressionError("the compressed payload holds NaN or infinite values")
    if chosen is None:
        return values, weight
    full = np.zeros(length, dtype=np.float64)
    full[chosen] = values
    return full, weight


def _with_residual(update: npt.NDArray[np.floating], residual: FloatArray | None) -> FloatArray:
    wanted = update.astype(np.float64)
    if residual is not None:
        if residual.shape != wanted.shape:
            raise CompressionError(f"the error-feedback residual has {residual.size} values, the update {wanted.size}")
        wanted += residual
    return wanted


def _residual(wanted: FloatArray, chosen: npt.NDArray[np.uint32] | None, sent: FloatArray) -> FloatArray:
    """What the receiver did not get: ``wanted`` minus what the sent values stand for."""
    residual = wanted.copy()
    if chosen is None:
        residual -= sent
    else:
        residual[chosen] -= sent
    return residual
