"""What a round's sum must satisfy, given what each counted silo signed: the bound on a liar.

In masked (and homomorphic) mode the hub never sees one update, only the sum, so a silo
that skips its sidecar's encoding can put anything in its vector: a huge value in one
word, or a weight word that cancels the others'. Two facts hold whatever it sends,
because every counted silo signed its record count and its update's L2 norm:

- the weight: the mean's denominator is the sum of the signed weights (the record
  count, or 1 under silo-level DP), never the weight word inside the vectors; a weight
  word that differs from that sum shows a vector that is not what its silo signed;
- the norm: by the triangle inequality the sum of honestly encoded updates has an L2
  norm of at most the weighted sum of their signed norms (plus the fixed-point rounding
  of each coordinate). A sum beyond it holds a contribution larger than its claim.

A sum that breaks either is not applied: the round is void, the model stays where it
was, and the report, the status and an Event say why. What remains possible (and
docs/robustness.md says so): a liar can steer the step anywhere inside that ball, as if
its update had the largest norm the claims allow; it cannot be named (the hub cannot
tell whose vector broke the bound); and under silo-level DP, where each silo adds noise
after measuring its norm, only the weight is checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ._aggregation import RoundSum

# float32 payloads summed in float64: the relative error a correct sum can show.
_RELATIVE_SLACK: Final = 1e-5


@dataclass(frozen=True)
class SignedContribution:
    """What one counted silo signed about its update."""

    weight: float
    l2_norm: float


def expected_weight(contributions: Mapping[str, SignedContribution]) -> float:
    """The mean's denominator: the signed weights of the counted silos."""
    return math.fsum(c.weight for c in contributions.values())


def sum_problem(
    total: RoundSum,
    contributions: Mapping[str, SignedContribution],
    *,
    check_norm: bool,
    coordinate_error: float,
) -> str | None:
    """Why ``total`` (the weighted sum and its weight word) cannot be the signed updates' sum; None if it can.

    ``coordinate_error`` is how far the mode's arithmetic may move one coordinate of a
    correct sum, the weight word included (``Aggregation.coordinate_error``: fixed-point
    rounding in masked mode, CKKS noise in homomorphic mode).
    """
    signed = expected_weight(contributions)
    if not math.isclose(total.weight, signed, rel_tol=_RELATIVE_SLACK, abs_tol=coordinate_error):
        return f"the sum's weight word is {total.weight:g}, the counted silos signed {signed:g} in all"
    if not check_norm:
        return None
    bound = math.fsum(c.weight * c.l2_norm for c in contributions.values())
    rounding = coordinate_error * math.sqrt(total.size)
    norm = total.norm()
    if norm > bound * (1 + _RELATIVE_SLACK) + rounding:
        return (
            f"the sum's L2 norm is {norm:.6g}, above {bound + rounding:.6g}, the most the counted silos' signed "
            "norms and weights allow: a vector is larger than its silo's claim"
        )
    return None
