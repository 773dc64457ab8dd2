"""What the hub holds says nothing about one silo's input: masked payloads look uniform,
fewer than t shares reconstruct nothing, and no stored array equals an encoded input."""

from __future__ import annotations

import numpy as np
import pytest

from fedsilo.secagg import SecAggError, Share, encode, reconstruct, split

from .conftest import make_round


def test_a_masked_payload_looks_uniform_and_differs_everywhere(five) -> None:
    five.advertise(list("abcde"))
    five.share(list("abcde"))
    five.mask(list("abcde"), np.random.default_rng(2))
    for silo in "abcde":
        values, weight = five.inputs[silo]
        plain = encode(values, weight, 4.0, 16)
        masked = five.masked[silo]
        assert np.mean(masked == plain) < 0.01
        # A uniform uint32 has mean 2^31 and its top bit set half the time.
        assert abs(masked.astype(np.float64).mean() / 2**31 - 1) < 0.15
        assert 0.35 < np.mean(masked >> 31) < 0.65


def test_fewer_than_t_shares_reconstruct_a_wrong_secret() -> None:
    secret = bytes(range(32))
    shares = split(secret, [1, 2, 3, 4, 5], threshold=3)
    assert reconstruct([shares[1], shares[4], shares[5]], 3, 32) == secret
    assert reconstruct([shares[2], shares[3], shares[4]], 3, 32) == secret
    with pytest.raises(ValueError):
        reconstruct([shares[1], shares[2]], 3, 32)
    # Pretending the threshold were 2 yields garbage, not the secret.
    try:
        guess = reconstruct([shares[1], shares[2]], 2, 32)
    except ValueError:
        guess = b""
    assert guess != secret


def test_shares_round_trip_and_refuse_malformed_bytes() -> None:
    share = split(b"\x01" * 32, [7], threshold=1)[7]
    assert Share.from_bytes(share.to_bytes()) == share
    with pytest.raises(ValueError):
        Share.from_bytes(b"\x00" * 10)


def test_the_server_never_stores_an_encoded_input() -> None:
    round_ = make_round(("a", "b", "c", "d"), threshold=3, length=129)
    round_.advertise(list("abcd"))
    round_.share(list("abcd"))
    round_.mask(list("abcd"), np.random.default_rng(3))
    round_.send(list("abcd"))
    stored = [v for v in vars(round_.server).values() if isinstance(v, np.ndarray)]
    for silo in "abcd":
        values, weight = round_.inputs[silo]
        plain = encode(values, weight, 4.0, 16)
        for array in stored:
            assert not np.array_equal(array, plain)
    round_.unmask(list("abc"))
    assert round_.server.counted == frozenset("abcd")


def test_the_hub_cannot_ask_for_both_shares_of_one_silo(five) -> None:
    five.advertise(list("abcde"))
    five.share(list("abcde"))
    five.mask(list("abcde"), np.random.default_rng(4))
    forged = b'{"dropped":["a"],"survivors":["a","b","c"],"type":"unmask"}'
    with pytest.raises(SecAggError, match="both shares of one silo"):
        five.clients["b"].unmask(forged)
