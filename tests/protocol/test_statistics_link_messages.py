"""The statistics phase's headers on the trainer link are strict: an ask or an answer that is malformed,
names a column twice, a range that is not finite, or totals of the wrong size is a ``MessageError``
naming the field, and a pass's vector is checked value by value before the sidecar masks it."""

from __future__ import annotations

import numpy as np
import pytest

from fedsilo.protocol import (
    MessageError,
    StatisticsAsk,
    StatisticsTotals,
    TrainerReply,
    TrainerTask,
    decode_totals,
    encode_totals,
    frames_in,
    frames_out,
    pb,
)


def test_an_ask_and_its_totals_round_trip_through_frames() -> None:
    ask = StatisticsAsk(
        step="histogram", numeric=(0, 2), categorical=(1,), codes=4, bins=8, ranges=((0, -1, 1), (2, 0, 5))
    )
    task = TrainerTask(kind="statistics", round=0, statistics=ask)
    assert frames_in(frames_out(task, b""), 1 << 20, TrainerTask) == (task, b"")
    vector = np.array([3.0, -2.5, 0.0, 1e12])
    reply = TrainerReply(round=0, totals=StatisticsTotals(features=3, records=40, values=4))
    header, blob = frames_in(frames_out(reply, encode_totals(vector)), 1 << 20, TrainerReply)
    assert header.totals is not None
    np.testing.assert_array_equal(decode_totals(header.totals, blob, 4), vector)


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ('{"kind":"statistics","round":0}', "statistics"),
        ('{"kind":"fit","round":1,"statistics":{"step":"describe"}}', "statistics"),
        ('{"kind":"statistics","round":2,"statistics":{"step":"describe"}}', "round"),
        ('{"kind":"preprocess","round":3}', "round"),
        ('{"kind":"statistics","round":0,"statistics":{"step":"records"}}', "step"),
        ('{"kind":"statistics","round":0,"statistics":{"step":"describe","numeric":[0]}}', "describe ask"),
        ('{"kind":"statistics","round":0,"statistics":{"step":"moments","numeric":[0,0]}}', "named once"),
        ('{"kind":"statistics","round":0,"statistics":{"step":"moments","numeric":[0],"categorical":[0]}}', "once"),
        ('{"kind":"statistics","round":0,"statistics":{"step":"moments","numeric":[-1]}}', "numeric"),
        ('{"kind":"statistics","round":0,"statistics":{"step":"moments","numeric":[100000]}}', "numeric"),
        ('{"kind":"statistics","round":0,"statistics":{"step":"moments","bins":0}}', "bins"),
        ('{"kind":"statistics","round":0,"statistics":{"step":"moments","ranges":[[0,0,1]]}}', "ranges"),
        (
            '{"kind":"statistics","round":0,"statistics":{"step":"histogram","numeric":[0],"ranges":[[0,1,1]]}}',
            "low < high",
        ),
        (
            '{"kind":"statistics","round":0,"statistics":{"step":"histogram","numeric":[0],"ranges":[[0,0,1e999]]}}',
            "overflows",
        ),
        (
            '{"kind":"statistics","round":0,"statistics":{"step":"histogram","numeric":[0,1],"ranges":[[0,0,1]]}}',
            "each numeric",
        ),
        ('{"kind":"statistics","round":0,"statistics":{"step":"moments","secret":1}}', "secret"),
    ],
)
def test_a_malformed_statistics_ask_is_refused_naming_what_is_wrong(header: str, field: str) -> None:
    with pytest.raises(MessageError, match=field):
        frames_in([pb.Frame(header_json=header)], 1 << 20, TrainerTask)


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ('{"round":0,"totals":{"features":0,"records":1}}', "features"),
        ('{"round":0,"totals":{"features":3,"records":-1}}', "records"),
        ('{"round":0,"totals":{"features":3,"records":1,"values":-2}}', "values"),
        ('{"round":0,"totals":{"features":3,"records":1,"rows":[[1,2,3]]}}', "rows"),
        ('{"round":0,"error":"boom","totals":{"features":3,"records":1}}', "no results"),
    ],
)
def test_a_malformed_totals_answer_is_refused_naming_what_is_wrong(header: str, field: str) -> None:
    with pytest.raises(MessageError, match=field):
        frames_in([pb.Frame(header_json=header)], 1 << 20, TrainerReply)


@pytest.mark.parametrize(
    ("values", "blob", "expected", "words"),
    [
        (4, encode_totals(np.ones(4)), 5, "plan has 5 values"),
        (4, encode_totals(np.ones(3)), 4, "not 4 float64"),
        (4, encode_totals(np.ones(4))[:-1], 4, "not 4 float64"),
        (2, encode_totals(np.array([1.0, np.nan])), 2, "NaN or infinity"),
        (2, encode_totals(np.array([np.inf, 1.0])), 2, "NaN or infinity"),
    ],
)
def test_totals_of_the_wrong_size_or_not_finite_never_reach_the_masks(
    values: int, blob: bytes, expected: int, words: str
) -> None:
    with pytest.raises(MessageError, match=words):
        decode_totals(StatisticsTotals(features=2, records=10, values=values), blob, expected)
