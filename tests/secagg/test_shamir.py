"""Shamir sharing over GF(2^521 - 1): any t shares rebuild the secret, t - 1 do not, edge cases hold."""

from __future__ import annotations

import itertools
import secrets

import pytest

from fedsilo.secagg import ShamirError, Share, reconstruct, split

PRIME = 2**521 - 1


@pytest.mark.parametrize(("n", "t"), [(2, 2), (3, 2), (5, 3), (6, 6), (7, 4)])
def test_every_set_of_t_shares_rebuilds_the_secret(n: int, t: int) -> None:
    secret = secrets.token_bytes(32)
    shares = split(secret, range(1, n + 1), t)
    for subset in itertools.combinations(shares.values(), t):
        assert reconstruct(list(subset), t, 32) == secret
    assert reconstruct(list(shares.values()), t, 32) == secret


@pytest.mark.parametrize(("n", "t"), [(3, 2), (5, 3), (7, 4)])
def test_t_minus_one_shares_do_not_rebuild_the_secret(n: int, t: int) -> None:
    secret = secrets.token_bytes(32)
    shares = split(secret, range(1, n + 1), t)
    for subset in itertools.combinations(shares.values(), t - 1):
        with pytest.raises(ShamirError, match=f"{t - 1} shares cannot rebuild"):
            reconstruct(list(subset), t, 32)
        # Read as a polynomial of lower degree, the shares give an unrelated field element.
        if t > 2:
            assert reconstruct(list(subset), t - 1, 66)[-32:] != secret


def test_t_minus_one_shares_fit_every_possible_secret() -> None:
    # Perfect secrecy: for any guess, some polynomial of degree t-1 through the t-1 shares
    # has that guess as its constant term, so the shares favour no secret.
    shares = split(b"\x42" * 32, [1, 2, 3], 3)
    known = [shares[1], shares[2]]
    for guess in (0, 1, 2**255, int.from_bytes(b"\x42" * 32, "big")):
        completed = [*known, Share(9, _value_at(9, [(0, guess), *((s.x, s.y) for s in known)]))]
        assert int.from_bytes(reconstruct(completed, 3, 66), "big") == guess


def _value_at(x: int, points: list[tuple[int, int]]) -> int:
    """The interpolating polynomial through ``points`` (Lagrange), evaluated at ``x``."""
    total = 0
    for i, (xi, yi) in enumerate(points):
        term = yi
        for j, (xj, _) in enumerate(points):
            if i != j:
                term = term * (x - xj) * pow(xi - xj, -1, PRIME) % PRIME
        total += term
    return total % PRIME


@pytest.mark.parametrize(
    "secret",
    [bytes(32), b"\xff" * 32, b"\x00" * 31 + b"\x01", bytes(65), b"\xff" * 65, b"", b"\x01"],
    ids=["zero", "all-ones", "one", "zero-65", "max-65", "empty", "one-byte"],
)
def test_secrets_at_the_edges_of_the_field_round_trip(secret: bytes) -> None:
    shares = split(secret, [1, 2, 3, 65535], 3)
    assert reconstruct([shares[65535], shares[1], shares[3]], 3, len(secret)) == secret


def test_a_share_inconsistent_with_the_others_is_detected() -> None:
    shares = split(b"s" * 32, [1, 2, 3, 4], 3)
    bad = Share(4, (shares[4].y + 1) % PRIME)
    with pytest.raises(ShamirError, match="point 4 does not lie on the polynomial"):
        reconstruct([shares[1], shares[2], shares[3], bad], 3, 32)


def test_shares_of_another_length_are_inconsistent() -> None:
    shares = split(b"\xff" * 40, [1, 2], 2)
    with pytest.raises(ShamirError, match="longer than 32 bytes"):
        reconstruct(list(shares.values()), 2, 32)


def test_invalid_splits_are_refused() -> None:
    with pytest.raises(ShamirError, match="between 1 and the 2 share points"):
        split(b"s", [1, 2], 3)
    with pytest.raises(ShamirError, match="distinct"):
        split(b"s", [1, 1, 2], 2)
    with pytest.raises(ShamirError, match="at most 65 bytes"):
        split(bytes(66), [1, 2], 2)
    with pytest.raises(ShamirError, match="point 0"):
        split(b"s", [0, 1], 2)


def test_duplicate_points_cannot_rebuild() -> None:
    shares = split(b"s" * 32, [1, 2, 3], 2)
    with pytest.raises(ShamirError, match="same point"):
        reconstruct([shares[1], shares[1]], 2, 32)


def test_shares_serialize_strictly_and_hide_their_value() -> None:
    share = split(b"\x01" * 32, [7], 1)[7]
    assert Share.from_bytes(share.to_bytes()) == share
    assert str(share.y) not in repr(share)
    with pytest.raises(ShamirError, match="68 bytes"):
        Share.from_bytes(bytes(10))
    with pytest.raises(ShamirError, match="outside the field"):
        Share.from_bytes(b"\x00\x01" + PRIME.to_bytes(66, "big"))
    with pytest.raises(ShamirError, match="point 0"):
        Share.from_bytes(bytes(68))
