"""Shamir secret sharing over the prime field GF(2^521 - 1).

Secrets are byte strings of up to 64 bytes (a 32-byte seed or an X25519 private key),
read as one field element; the Mersenne prime 2^521 - 1 is larger than any of them.
Coefficients come from ``secrets``. Any ``t`` shares reconstruct; ``t - 1`` say nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

PRIME = 2**521 - 1
_ELEMENT_BYTES = 66


class ShamirError(ValueError):
    """Shares that cannot reconstruct (too few, duplicated, malformed)."""


@dataclass(frozen=True)
class Share:
    """The value of the sharing polynomial at ``x`` (1-based silo index)."""

    x: int
    y: int

    def to_bytes(self) -> bytes:
        """2 bytes of x, 66 bytes of y."""
        return self.x.to_bytes(2, "big") + self.y.to_bytes(_ELEMENT_BYTES, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> Share:
        """Parse ``to_bytes`` output strictly."""
        if len(data) != 2 + _ELEMENT_BYTES:
            raise ShamirError(f"a share has {2 + _ELEMENT_BYTES} bytes, got {len(data)}")
        x, y = int.from_bytes(data[:2], "big"), int.from_bytes(data[2:], "big")
        if x == 0 or y >= PRIME:
            raise ShamirError("share is outside the field")
        return cls(x, y)


def split(secret: bytes, xs: Sequence[int], threshold: int) -> dict[int, Share]:
    """Shares of ``secret`` at every x in ``xs``; any ``threshold`` of them reconstruct it."""
    if not 1 <= threshold <= len(xs):
        raise ShamirError(f"threshold {threshold} must be between 1 and {len(xs)}")
    if len(set(xs)) != len(xs) or min(xs) < 1:
        raise ShamirError("share points must be distinct positive integers")
    value = int.from_bytes(secret, "big")
    coefficients = [value] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    shares = {}
    for x in xs:
        y = 0
        for coefficient in reversed(coefficients):
            y = (y * x + coefficient) % PRIME
        shares[x] = Share(x, y)
    return shares


def reconstruct(shares: Sequence[Share], threshold: int, length: int) -> bytes:
    """The secret (``length`` bytes) from at least ``threshold`` shares, by Lagrange at 0."""
    if len(shares) < threshold:
        raise ShamirError(f"{len(shares)} shares cannot reconstruct a secret shared with threshold {threshold}")
    points = list(shares)[:threshold]
    if len({s.x for s in points}) != len(points):
        raise ShamirError("duplicate share points")
    secret = 0
    for i, share in enumerate(points):
        numerator, denominator = 1, 1
        for j, other in enumerate(points):
            if i != j:
                numerator = numerator * (-other.x) % PRIME
                denominator = denominator * (share.x - other.x) % PRIME
        secret = (secret + share.y * numerator * pow(denominator, -1, PRIME)) % PRIME
    if secret >= 1 << (8 * length):
        raise ShamirError("shares are inconsistent: the reconstructed value is out of range")
    return secret.to_bytes(length, "big")
