"""The first steps of an update's way and plain mode's encoding: checked, clipped, weighted.

Pure functions, and the pipeline steps over them (``CheckWeights``, ``Clip``,
``PlainEncode``; see ``_pipeline``). The trainer is not trusted to have behaved: its
tensors are checked for names, shapes and finite values here, and the norm cap is
enforced here rather than assumed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fedsilo.identity import sha256_digest
from fedsilo.protocol import (
    FloatVector,
    PolicyVerdict,
    StreamError,
    TensorLayout,
    Weights,
    architecture_fingerprint,
    decode_weights,
)

from ._compress import packed_payload
from ._pipeline import Next, OutgoingUpdate, Payload, UpdateRefused

# Values per plain-mode chunk: 256 Ki float32 = 1 MiB.
CHUNK_VALUES = 1 << 18
# Values per slice of the clip step's float64 arithmetic (512 KiB per temporary).
CLIP_SLICE = 1 << 16


class InvalidUpdate(UpdateRefused, ValueError):
    """A trainer result that cannot become an update; ``reason`` is logged and reported."""

    verdict_prefix = "rejected by sidecar"
    log_phrase = "rejected the trainer's update"


@dataclass(frozen=True)
class PreparedUpdate:
    """A clipped update ready for weighting, with the norm the silo will sign."""

    delta: FloatVector
    l2_norm: float
    clipped: bool


def check_trainer_weights(layout: TensorLayout, weights: Weights) -> FloatVector:
    """The trainer's model as a flat vector; ``InvalidUpdate`` on a wrong tensor or NaN/Inf."""
    try:
        layout.check(weights)
    except ValueError as error:
        raise InvalidUpdate(f"shape_mismatch: {error}") from error
    vector = layout.flatten(weights)
    bad = ~np.isfinite(vector)
    if bad.any():
        first = int(np.argmax(bad))
        offset = 0
        for spec in layout.tensors:
            if first < offset + spec.size:
                raise InvalidUpdate(f"non_finite: {int(bad.sum())} NaN/Inf values, first in tensor {spec.name!r}")
            offset += spec.size
    return vector


def prepare_update(
    global_vector: FloatVector, local_vector: FloatVector, norm_cap: float, clip_range: float
) -> PreparedUpdate:
    """``local - global``, scaled into the L2 ball of ``norm_cap`` and the fixed-point range.

    Computed in float64 one slice at a time (``CLIP_SLICE``): the norm in a first pass, the
    scaled and clipped float32 update in a second, so beside the two models and the update
    the silo holds a few slices, not whole-model float64 copies (a 100M-parameter model's
    difference alone is 800 MB in float64).
    """
    if global_vector.shape != local_vector.shape:
        raise ValueError(f"global model has {global_vector.size} values, the local one {local_vector.size}")
    norm = _norm(_differences(global_vector, local_vector))
    clipped = norm > norm_cap
    scale = norm_cap / norm if clipped else 1.0
    update = np.empty(local_vector.size, dtype=np.float32)
    for start, delta in _differences(global_vector, local_vector):
        if clipped:
            delta *= scale
        np.clip(delta, -clip_range, clip_range, out=delta)
        update[start : start + delta.size] = delta
    signed = _norm(_slices(update))
    if signed > norm_cap:
        # Rounding to float32 can land a hair above the cap, and the policy denies anything above it.
        update *= np.float32(norm_cap / signed * (1 - 1e-6))
        signed = _norm(_slices(update))
    return PreparedUpdate(update, signed, clipped)


def _differences(
    global_vector: FloatVector, local_vector: FloatVector
) -> Iterator[tuple[int, npt.NDArray[np.float64]]]:
    """``local - global`` in float64, one slice at a time, with each slice's offset."""
    for start in range(0, local_vector.size, CLIP_SLICE):
        end = start + CLIP_SLICE
        yield start, local_vector[start:end].astype(np.float64) - global_vector[start:end].astype(np.float64)


def _slices(vector: FloatVector) -> Iterator[tuple[int, npt.NDArray[np.float64]]]:
    """``vector`` in float64, one slice at a time, with each slice's offset."""
    for start in range(0, vector.size, CLIP_SLICE):
        yield start, vector[start : start + CLIP_SLICE].astype(np.float64)


def _norm(slices: Iterator[tuple[int, npt.NDArray[np.float64]]]) -> float:
    """The L2 norm of the vector the slices make up, summed in float64."""
    return math.sqrt(sum(float(np.dot(piece, piece)) for _, piece in slices))


def weighted_plain_payload(update: FloatVector, weight: int) -> FloatVector:
    """Plain mode's payload: ``[weight * update..., weight]`` as float32."""
    payload = np.empty(update.size + 1, dtype=np.float32)
    np.multiply(update, np.float32(weight), out=payload[:-1])
    payload[-1] = weight
    return payload


def check_weights(update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
    """Step: the trainer's model bytes become a checked flat vector (names, shapes, finite values).

    The architecture fingerprint is taken from the tensors as the trainer sent them (their own
    dtypes), so the hub can tell a model of another architecture before reading its payload.
    """
    try:
        weights = decode_weights(update.model_bytes)
    except StreamError as error:
        raise InvalidUpdate(f"payload_invalid: {error}") from error
    update.architecture = architecture_fingerprint(weights)
    update.local_vector = check_trainer_weights(update.layout, weights)
    # The flat vector is all the rest of the way reads: the tensors and their bytes go now, not
    # after the upload (a 100M-parameter model is 400 MB a copy).
    del weights
    update.model_bytes = b""
    return call_next(update)


@dataclass(frozen=True)
class Clip:
    """Step: ``local - global`` inside the norm cap and the fixed-point range; its norm is what gets signed."""

    norm_cap: float
    clip_range: float

    def __call__(self, update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
        """Clip the trainer's change to the global model."""
        if update.local_vector is None:
            raise RuntimeError("no local vector yet: the check step must come before the clip step")
        prepared = prepare_update(update.global_vector, update.local_vector, self.norm_cap, self.clip_range)
        update.delta, update.l2_norm = prepared.delta, prepared.l2_norm
        return call_next(update)


def plain_encode(update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
    """Step (plain mode): the weighted sum's share ``[weight * update..., weight]`` as float32 chunks.

    A compressed update (the compress step ran) goes as its packed bytes instead.
    """
    if update.compressed is not None:
        update.payload = packed_payload(update.compressed.view(np.uint8))
        return call_next(update)
    payload = weighted_plain_payload(update.require_delta(), update.weight)

    def chunks() -> Iterator[tuple[int, npt.NDArray[np.generic]]]:
        for offset in range(0, payload.size, CHUNK_VALUES):
            yield offset, payload[offset : offset + CHUNK_VALUES]

    update.payload = Payload("float32", chunks, sha256_digest(payload.tobytes()))
    return call_next(update)
