"""Claims the hub can check itself: in plain mode it holds the payload, so it measures what was signed.

An update's signed norm, record count and length are claims; masked mode can only bound
them, but a plain payload ``[w * update..., w]`` shows its real weight, norm and length.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from fedsilo.policy import Reason, Refusal
from fedsilo.protocol import UpdateMetadata

# Relative slack between a claimed and a measured norm or weight: float32 rounding of
# ``weight * update`` and back, nothing more.
_CLAIM_TOLERANCE: Final = 1e-4
# Values converted to float64 at a time when measuring a norm: a whole float64 copy of a
# 100M-value payload, and another of it divided by its weight, were 1.5 GiB per upload checked.
_NORM_SLICE: Final = 1 << 16


def _norm(values: npt.NDArray[np.generic]) -> float:
    """The L2 norm of ``values`` in float64, one slice converted at a time."""
    total = 0.0
    for start in range(0, values.size, _NORM_SLICE):
        piece = values[start : start + _NORM_SLICE].astype(np.float64)
        total += float(np.dot(piece, piece))
    return math.sqrt(total)


def check_cleartext_claims(
    payload: npt.NDArray[np.generic], claims: UpdateMetadata, *, silo_level_dp: bool, compressed: bool = False
) -> None:
    """Raise ``Refusal(CLAIM_MISMATCH)`` when a plain payload ``[w * update..., w]`` is not what was signed.

    The weight is the claimed record count (1 with silo-level DP, which weighs silos
    equally). The norm is compared unless the silo added noise after measuring it
    (silo-level DP): the signed norm is the clipped update's, before the noise; nor when
    the update was compressed: rounding, top-k and the silo's error feedback change the
    norm of what is sent, and the signed norm stays the clipped update's (what the cap reads).
    """
    if payload.size != claims.vector_length:
        raise Refusal(
            Reason.CLAIM_MISMATCH, f"the payload has {payload.size} values, the update claims {claims.vector_length}"
        )
    weight = float(payload[-1])
    expected = 1.0 if silo_level_dp else float(claims.num_samples)
    if not math.isclose(weight, expected, rel_tol=_CLAIM_TOLERANCE):
        raise Refusal(
            Reason.CLAIM_MISMATCH,
            f"the payload's weight is {weight:g}, the update claims {claims.num_samples} records",
        )
    if silo_level_dp or compressed:
        return
    norm = _norm(payload[:-1]) / weight
    if not math.isclose(norm, claims.l2_norm, rel_tol=_CLAIM_TOLERANCE, abs_tol=1e-6):
        raise Refusal(
            Reason.CLAIM_MISMATCH, f"the payload's L2 norm is {norm:.6g}, the update claims {claims.l2_norm:.6g}"
        )
