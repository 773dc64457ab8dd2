"""Masked sign voting: the masked tally is the plain vote exactly, the wire shrinks, and the hub's range check
catches what it says it catches (and, shown as such, not what it says it cannot)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsilo.compression import (
    CompressionError,
    VoteRangeError,
    pack_votes,
    unpack_votes,
    vote_levels,
    vote_tally,
    vote_word_bits,
)
from fedsilo.strategies import SignVote, make_strategy, plain_tally
from tests.secagg.conftest import make_round

from ..datasets.conftest import job_spec

NAMES = ("a", "b", "c", "d", "e", "f")


def _masked_tally(updates: dict[str, np.ndarray], dropped: tuple[str, ...] = ()) -> np.ndarray:
    """The hub's tally of ``updates`` through a real secure-aggregation round, the wire packed at the vote width."""
    names = tuple(sorted(updates))
    count = next(iter(updates.values())).size
    round_ = make_round(names, threshold=len(names) // 2 + 1, length=count)
    round_.advertise(list(names))
    round_.share(list(names))
    counted = [s for s in names if s not in dropped]
    for silo in counted:
        masked = round_.clients[silo].mask_words(vote_levels(updates[silo]))
        round_.server.add_input(silo, unpack_votes(pack_votes(masked, len(counted)), len(counted), count))
    for silo in dropped:
        round_.server.exclude(silo, "dropped")
    round_.unmask(counted)
    return vote_tally(round_.server.raw_result(), len(counted))


@settings(max_examples=12)
@given(
    silos=st.integers(3, 6),
    count=st.integers(1, 300),
    zeros=st.floats(0.0, 0.5),
    drop=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_masked_tally_equals_the_plain_vote_exactly(
    silos: int, count: int, zeros: float, drop: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    updates = {}
    for name in NAMES[:silos]:
        update = rng.normal(0.0, 1.0, count)
        update[rng.random(count) < zeros] = 0.0  # abstentions: coordinates a silo did not move
        updates[name] = update
    dropped = (NAMES[silos - 1],) if drop else ()
    counted = [u for s, u in updates.items() if s not in dropped]
    np.testing.assert_array_equal(_masked_tally(updates, dropped), plain_tally(counted))


def test_votes_are_packed_at_two_bits_plus_the_sum_headroom_not_32() -> None:
    count = 10_000
    levels = vote_levels(np.random.default_rng(1).normal(size=count))
    for voters, width in ((2, 3), (10, 6), (100, 9)):
        assert vote_word_bits(voters) == width
        wire = pack_votes(levels, voters)
        assert wire.size == -(-count * width // 8) < 4 * count
        np.testing.assert_array_equal(unpack_votes(wire, voters, count), levels)


def test_a_level_sum_no_honest_voters_can_send_is_refused_naming_the_coordinate() -> None:
    rng = np.random.default_rng(2)
    updates = {name: rng.normal(size=50) for name in NAMES[:4]}
    honest: np.ndarray = np.stack([vote_levels(u) for u in updates.values()]).sum(axis=0, dtype=np.uint32)
    # A modified sidecar's word makes coordinate 7 sum to 9: 4 honest voters send at most 8 in all.
    tampered = honest.astype(np.uint32).copy()
    tampered[7] = 8 + 1
    with pytest.raises(VoteRangeError, match=r"coordinate 7 is 9, above 8, the most 4 honest voters"):
        vote_tally(tampered, 4)
    # Below zero, the sum wraps around the masked words' modulus and is refused the same way.
    wrapped = honest.astype(np.uint32).copy()
    wrapped[3] = (1 << vote_word_bits(4)) - 1
    with pytest.raises(VoteRangeError, match="coordinate 3"):
        vote_tally(wrapped, 4)


def test_a_tampered_contribution_inside_the_range_passes_unseen_as_documented() -> None:
    # What the range check cannot see: three honest silos abstain (level 1 each) and a fourth
    # sends level 5, which no honest encoding makes; the sum 8 is within what four voters can send.
    honest = np.full(3, 3, dtype=np.uint32)
    liar = np.array([5, 0, 2], dtype=np.uint32)
    tally = vote_tally(honest + liar, 4)
    # Coordinate 0 reads +4 votes: the liar moved it by four, not one, and the hub cannot tell.
    assert tally.tolist() == [4, -1, 1]


def test_the_sign_vote_moves_each_coordinate_by_exactly_the_step_whatever_a_silo_sends() -> None:
    spec = job_spec(silos=5, strategy={"name": "sign_vote", "signStepSize": 0.05})
    strategy = make_strategy(spec)
    assert isinstance(strategy, SignVote)
    rng = np.random.default_rng(3)
    model = {"w": rng.normal(size=(4, 3)).astype(np.float32), "b": np.zeros(3, dtype=np.float32)}
    honest = [{k: rng.normal(size=v.shape).astype(np.float32) for k, v in model.items()} for _ in range(4)]
    boosted = {k: np.full_like(v, 1e6) for k, v in model.items()}
    moved = strategy.aggregate_updates(model, [*honest, boosted])
    for name, value in model.items():
        step = np.abs(moved[name].astype(np.float64) - value)
        assert np.all(np.isclose(step, 0.05, atol=1e-6) | (step == 0.0)), step
    # The boosted silo is one vote: where the honest four split 2-2, it decides; nowhere does it move more.
    tally = plain_tally([np.concatenate([u["w"].ravel(), u["b"]]) for u in honest])
    flat = np.concatenate([(moved[k].astype(np.float64) - model[k]).ravel() for k in ("w", "b")])
    np.testing.assert_array_equal(np.sign(flat), np.sign(tally + 1))


def test_bad_input_to_the_vote_is_refused_with_what_is_wrong() -> None:
    with pytest.raises(CompressionError, match="NaN"):
        vote_levels(np.array([0.1, np.nan]))
    strategy = make_strategy(job_spec(silos=3, strategy={"name": "sign_vote"}))
    assert isinstance(strategy, SignVote)
    model = {"w": np.zeros(4, dtype=np.float32)}
    with pytest.raises(ValueError, match="the tally has shape"):
        strategy.aggregate_tally(model, np.zeros(5, dtype=np.int64))
    with pytest.raises(TypeError, match="not from the mean"):
        strategy.aggregate(model, model)
    with pytest.raises(ValueError, match="no update"):
        strategy.aggregate_updates(model, [])
    with pytest.raises(CompressionError, match="packed bytes"):
        unpack_votes(np.zeros(3, dtype=np.uint8), 4, 100)


def test_a_round_that_lost_voters_reads_the_sum_at_the_width_its_silos_packed() -> None:
    # Five participants packed 5-bit words; three were counted. A sum of 17 reads as 1 in
    # 4-bit words (three voters' width) and would pass; at the packed width it is refused.
    total = np.array([17, 3], dtype=np.uint32)
    assert vote_tally(total, 3).tolist() == [-2, 0]
    with pytest.raises(VoteRangeError, match="coordinate 0 is 17, above 6"):
        vote_tally(total, 3, word_bits=vote_word_bits(5))


@pytest.mark.parametrize("width", [3, 33])
def test_a_width_the_voters_sum_does_not_fit_is_refused_naming_it(width: int) -> None:
    with pytest.raises(CompressionError, match=f"need 5- to 32-bit words, not {width}"):
        vote_tally(np.zeros(2, dtype=np.uint32), 5, word_bits=width)
