"""A masked sign-vote job's compress step: the update's signs as levels in the round's vote words,
and a refusal naming what is wrong when the hub publishes words the vote cannot be summed in."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fedsilo.compression import vote_settings
from fedsilo.protocol import RoundCompression
from fedsilo.sidecar._compress import Compress
from fedsilo.sidecar._pipeline import Step, run_steps
from fedsilo.sidecar._update import Clip, check_weights
from fedsilo_testing.sidecar_updates import Wire

from .test_update_steps import PLAN, _update

VOTERS = ("a", "b", "c", "d", "e")
LOCAL = {"w": np.array([[0.5, -0.2, 0.0], [1.0, -3.0, 0.1]], np.float32), "b": np.array([0, -1e-3, 2], np.float32)}


def _run(compression: RoundCompression | None) -> tuple[bool, tuple[str, ...], Wire]:
    wire = Wire()
    steps: list[Step] = [check_weights, Clip(norm_cap=100.0, clip_range=4.0), Compress(True, False, vote=True), wire]
    update = _update(LOCAL)
    update.plan = replace(PLAN, participants=VOTERS, compression=compression)
    verdict = run_steps(steps, update)
    return verdict.accepted, verdict.reasons, wire


def test_the_vote_step_sends_each_coordinates_sign_as_a_level_in_the_rounds_words() -> None:
    settings = vote_settings(len(VOTERS), 4.0)
    accepted, _, wire = _run(settings)
    (sent,) = wire.sent
    assert accepted and sent.compression == settings and settings.word_bits == 2 + 3
    np.testing.assert_array_equal(sent.compressed, [2, 0, 1, 2, 0, 2, 1, 0, 2])


@pytest.mark.parametrize(
    ("compression", "words"),
    [
        (None, "the round publishes no vote words"),
        (RoundCompression(bits=2, word_bits=3, value_range=4.0, weight_scale=1), "in 5-bit words"),
        (RoundCompression(bits=8, word_bits=11, value_range=4.0, weight_scale=1), "2-bit levels"),
        (RoundCompression(bits=2, word_bits=5, value_range=4.0, weight_scale=1, subset_size=3), "over all coordinates"),
    ],
    ids=["no-words", "too-narrow", "quantized", "subset"],
)
def test_words_the_vote_cannot_be_summed_in_are_refused_naming_them(
    compression: RoundCompression | None, words: str
) -> None:
    accepted, reasons, wire = _run(compression)
    assert not accepted and not wire.sent
    assert "compression_failed" in reasons[0] and words in reasons[0]
