"""Turning a trainer's local model into the update a silo may send: checked, clipped, weighted.

Pure functions the sidecar calls between receiving the trainer's result and masking. The
trainer is not trusted to have behaved: its tensors are checked for names, shapes and
finite values here, and the norm cap is enforced here rather than assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedsilo.protocol import FloatVector, TensorLayout, Weights


class InvalidUpdate(ValueError):
    """A trainer result that cannot become an update; ``reason`` is logged and reported."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


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
    """``local - global``, scaled into the L2 ball of ``norm_cap`` and the fixed-point range."""
    delta = local_vector.astype(np.float64) - global_vector.astype(np.float64)
    norm = float(np.linalg.norm(delta))
    clipped = norm > norm_cap
    if clipped:
        delta *= norm_cap / norm
    np.clip(delta, -clip_range, clip_range, out=delta)
    update = delta.astype(np.float32)
    signed = float(np.linalg.norm(update.astype(np.float64)))
    if signed > norm_cap:
        # Rounding to float32 can land a hair above the cap, and the policy denies anything above it.
        update *= np.float32(norm_cap / signed * (1 - 1e-6))
        signed = float(np.linalg.norm(update.astype(np.float64)))
    return PreparedUpdate(update, signed, clipped)


def weighted_plain_payload(update: FloatVector, weight: int) -> FloatVector:
    """Plain mode's payload: ``[weight * update..., weight]`` as float32."""
    payload = np.empty(update.size + 1, dtype=np.float32)
    np.multiply(update, np.float32(weight), out=payload[:-1])
    payload[-1] = weight
    return payload
