"""The unmasked sum equals, bit for bit in Z_2^32, the sum of the counted silos' encoded
inputs, whoever drops out at whichever step (up to n - t of them)."""

from __future__ import annotations

import numpy as np
import pytest

from fedsilo.secagg import SecAggAbort, encode

from .conftest import make_round


def _expected(round_, counted: list[str]) -> np.ndarray:
    total = np.zeros(round_.config.vector_length, dtype=np.uint32)
    for silo in counted:
        values, weight = round_.inputs[silo]
        total += encode(values, weight, round_.config.clip_range, round_.config.fractional_bits)
    return total


@pytest.mark.parametrize("trial", range(100))
def test_the_sum_is_exact_whatever_drops_out(trial: int) -> None:
    rng = np.random.default_rng(trial)
    n = int(rng.integers(3, 9))
    threshold = int(rng.integers(2, n + 1))
    names = tuple(f"silo-{i}" for i in range(n))
    round_ = make_round(names, threshold, length=int(rng.integers(5, 400)), chunk_words=int(rng.choice([4, 16, 64])))
    budget = n - threshold  # how many may drop in total

    def survivors(alive: list[str]) -> list[str]:
        nonlocal budget
        k = int(rng.integers(0, budget + 1))
        budget -= k
        dropped = set(rng.choice(alive, size=k, replace=False).tolist()) if k else set()
        return [s for s in alive if s not in dropped]

    alive = round_.advertise(survivors(list(names)))
    alive = round_.share(survivors(alive))
    round_.mask(alive, rng)
    sent = survivors(alive)  # drop after masking, before the input arrives
    counted = list(sent)
    for silo in sent:  # the policy gate denies some, as long as t inputs remain
        if rng.random() < 0.15 and len(counted) > threshold:
            counted.remove(silo)
    round_.send(counted)
    for silo in set(alive) - set(counted):
        round_.server.exclude(silo, "dropped or denied")
    quiet = int(rng.integers(0, len(counted) - threshold + 1))  # silos that vanish while unmasking
    responders = list(rng.permutation(counted)[quiet:])
    round_.unmask(responders)
    np.testing.assert_array_equal(round_.server.raw_result(), _expected(round_, counted))
    total, weight = round_.server.result()
    assert weight == sum(round_.inputs[s][1] for s in counted)
    plain = sum(round_.inputs[s][0] * round_.inputs[s][1] for s in counted)
    # Per input: fixed-point rounding (2^-f) plus float32 scaling (half an ulp of |x| * weight).
    np.testing.assert_allclose(total, plain, atol=len(counted) * (2.0**-16 + 4.0 * 500 * 2.0**-24))


def test_fewer_survivors_than_the_threshold_abort_with_a_clear_message(five) -> None:
    five.advertise(["a", "b", "c", "d", "e"])
    five.share(["a", "b", "c", "d", "e"])
    five.mask(["a", "b"], np.random.default_rng(0))
    five.send(["a", "b"])
    with pytest.raises(SecAggAbort, match="at the input step: 2 silos remain, the threshold is 3"):
        five.server.unmask_request()


def test_too_few_silos_at_advertising_abort(five) -> None:
    with pytest.raises(SecAggAbort, match="advertising keys: 2 silos remain"):
        five.advertise(["a", "b"])


def test_too_few_unmask_answers_abort(five) -> None:
    five.advertise(["a", "b", "c", "d", "e"])
    five.share(["a", "b", "c", "d", "e"])
    five.mask(["a", "b", "c", "d"], np.random.default_rng(1))
    five.send(["a", "b", "c", "d"])
    five.server.exclude("e", "dropped")
    with pytest.raises(SecAggAbort, match="unmasking: 2 silos remain"):
        five.unmask(["a", "b"])
