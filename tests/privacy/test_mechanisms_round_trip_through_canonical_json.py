"""Mechanisms are persisted and signed: their JSON is canonical, reads back to the same event,
and anything that is not a mechanism is refused."""

from __future__ import annotations

import pytest

from fedsilo.privacy import DpSgdEvent, GaussianEvent, Mechanism, mechanism_from_json, mechanism_json


@pytest.mark.parametrize("event", [DpSgdEvent(1.1, 256 / 60000, 14063), GaussianEvent(0.7, 3)], ids=str)
def test_a_mechanism_reads_back_from_its_json(event: Mechanism) -> None:
    assert mechanism_from_json(mechanism_json(event)) == event
    assert mechanism_from_json(mechanism_json(event).decode()) == event


def test_the_json_is_canonical() -> None:
    assert mechanism_json(DpSgdEvent(1.5, 0.01, 7)) == (
        b'{"kind":"dp_sgd","noise_multiplier":1.5,"sample_rate":0.01,"steps":7}'
    )
    assert mechanism_json(GaussianEvent(2.0, 1)) == b'{"count":1,"kind":"gaussian","noise_multiplier":2.0}'


def test_integral_numbers_read_as_floats() -> None:
    assert mechanism_from_json('{"kind":"gaussian","noise_multiplier":2,"count":1}') == GaussianEvent(2.0, 1)


@pytest.mark.parametrize(
    "document",
    [
        "[]",
        '{"kind":"laplace","scale":1.0}',
        '{"kind":"gaussian","noise_multiplier":1.0}',
        '{"kind":"gaussian","noise_multiplier":1.0,"count":1,"extra":0}',
        '{"kind":"gaussian","noise_multiplier":"1.0","count":1}',
        '{"kind":"gaussian","noise_multiplier":true,"count":1}',
        '{"kind":"dp_sgd","noise_multiplier":1.0,"sample_rate":1.5,"steps":1}',
        '{"kind":"dp_sgd","noise_multiplier":1.0,"sample_rate":0.5,"steps":0}',
        '{"kind":"dp_sgd","noise_multiplier":-1.0,"sample_rate":0.5,"steps":1}',
        '{"kind":"gaussian","noise_multiplier":1.0,"count":1.5}',
    ],
)
def test_what_is_not_a_mechanism_is_refused(document: str) -> None:
    with pytest.raises(ValueError):
        mechanism_from_json(document)
