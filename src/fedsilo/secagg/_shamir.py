"""Shamir t-of-n secret sharing over the prime field GF(2^521 - 1).

The client shares its 32-byte self-mask seed and its 32-byte X25519 masking key with
every peer; the server rebuilds a secret from the shares survivors reveal. One field
element holds a whole secret (2^521 - 1 > 2^256), so there is no chunking to get wrong.
Coefficients come from ``secrets``. Python integers are not constant-time; the values
handled here are shares, each alone uniformly random, and no branch depends on them.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._errors import SecAggError

# The Mersenne prime 2^521 - 1: every secret of up to 65 bytes is a field element.
PRIME = 2**521 - 1
ELEMENT_BYTES = 66
MAX_SECRET_BYTES = 65
_X_BYTES = 2


class ShamirError(SecAggError):
    """Shares that cannot rebuild a secret: too few, duplicated, inconsistent or malformed."""


@dataclass(frozen=True)
class Share:
    """The sharing polynomial's value ``y`` at point ``x`` (a silo's 1-based position)."""

    x: int
    y: int

    def __post_init__(self) -> None:
        if not 0 < self.x < 1 << (8 * _X_BYTES):
            raise ShamirError(f"share point {self.x} is outside 1..{(1 << (8 * _X_BYTES)) - 1}")
        if not 0 <= self.y < PRIME:
            raise ShamirError("share value is outside the field")

    def __repr__(self) -> str:
        return f"Share(x={self.x}, y=<hidden>)"

    def to_bytes(self) -> bytes:
        """2 bytes of x, 66 bytes of y, big-endian."""
        return self.x.to_bytes(_X_BYTES, "big") + self.y.to_bytes(ELEMENT_BYTES, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> Share:
        """Parse ``to_bytes`` output strictly."""
        if len(data) != SHARE_BYTES:
            raise ShamirError(f"a share has {SHARE_BYTES} bytes, got {len(data)}")
        return cls(int.from_bytes(data[:_X_BYTES], "big"), int.from_bytes(data[_X_BYTES:], "big"))


SHARE_BYTES = _X_BYTES + ELEMENT_BYTES


def split(secret: bytes, xs: Iterable[int], threshold: int) -> dict[int, Share]:
    """Shares of ``secret`` at every point in ``xs``; any ``threshold`` of them rebuild it, fewer reveal nothing."""
    points = list(xs)
    if len(secret) > MAX_SECRET_BYTES:
        raise ShamirError(f"a secret has at most {MAX_SECRET_BYTES} bytes, got {len(secret)}")
    if not 1 <= threshold <= len(points):
        raise ShamirError(f"threshold {threshold} must be between 1 and the {len(points)} share points")
    if len(set(points)) != len(points):
        raise ShamirError("share points must be distinct")
    # A random polynomial of degree t-1 whose constant term is the secret.
    coefficients = [int.from_bytes(secret, "big")] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    return {x: Share(x, _evaluate(coefficients, x)) for x in points}


def reconstruct(shares: Sequence[Share], threshold: int, length: int) -> bytes:
    """The ``length``-byte secret from at least ``threshold`` shares (Lagrange interpolation at 0).

    The first ``threshold`` shares by point define the polynomial; every further share
    must lie on it, so one wrong share among more than ``threshold`` is detected rather
    than silently changing the secret.
    """
    if len(shares) < threshold:
        raise ShamirError(f"{len(shares)} shares cannot rebuild a secret shared with threshold {threshold}")
    if len({s.x for s in shares}) != len(shares):
        raise ShamirError("two shares have the same point")
    ordered = sorted(shares, key=lambda s: s.x)
    basis, extra = ordered[:threshold], ordered[threshold:]
    xs = tuple(s.x for s in basis)
    for share in extra:
        if _interpolate(basis, _lagrange_weights(xs, share.x)) != share.y:
            raise ShamirError(f"the share at point {share.x} does not lie on the polynomial of the others")
    secret = _interpolate(basis, _lagrange_weights(xs, 0))
    if secret >> (8 * length):
        raise ShamirError(f"the shares rebuild a value longer than {length} bytes: they are inconsistent")
    return secret.to_bytes(length, "big")


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    y = 0
    for coefficient in reversed(coefficients):
        y = (y * x + coefficient) % PRIME
    return y


def _interpolate(shares: Sequence[Share], weights: Sequence[int]) -> int:
    return sum(s.y * w for s, w in zip(shares, weights, strict=True)) % PRIME


@functools.lru_cache(maxsize=64)
def _lagrange_weights(xs: tuple[int, ...], at: int) -> tuple[int, ...]:
    """Weights w_i with p(at) = sum w_i * p(x_i) for every polynomial of degree < len(xs).

    The server rebuilds every secret of a round from the same responders' points, so the
    weights (and their modular inverses) are computed once per round, not per secret.
    """
    weights = []
    for i, xi in enumerate(xs):
        numerator, denominator = 1, 1
        for j, xj in enumerate(xs):
            if i != j:
                numerator = numerator * (at - xj) % PRIME
                denominator = denominator * (xi - xj) % PRIME
        weights.append(numerator * pow(denominator, -1, PRIME) % PRIME)
    return tuple(weights)
