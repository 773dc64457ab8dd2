"""Untrusted JSON is refused with a MessageError for everything ambiguous or unbounded."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field

from fedsilo.protocol import MessageError, StrictMessage, strict_json


class Sample(StrictMessage):
    name: str
    count: Annotated[int, Field(ge=0, le=1000)]
    scale: float
    tags: tuple[str, ...] = ()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"a": 1e400}', "overflows a float"),
        (b'{"a": ' + b"9" * 5000 + b"}", "an integer of 5000 digits"),
        (b"[" * 100 + b"]" * 100, "nested deeper than 32 levels"),
        (b'{"a": "\xff"}', "not UTF-8 (byte 7)"),
        (b'{"a": ', "not JSON"),
    ],
)
def test_ambiguous_or_unbounded_json_is_refused_with_the_reason(data: bytes, expected: str) -> None:
    with pytest.raises(MessageError, match="doc: ") as raised:
        strict_json(data, what="doc")
    assert expected in str(raised.value)


def test_documents_over_the_size_limit_are_refused_before_parsing() -> None:
    with pytest.raises(MessageError, match="more than the limit of 10"):
        strict_json(b'{"a": "0123456789"}', what="doc", max_bytes=10)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert strict_json('{"a": "' + "[" * 100 + '\\"{"}', what="doc") == {"a": "[" * 100 + '"{'}


def test_a_strict_message_round_trips_through_its_canonical_bytes() -> None:
    sample = Sample(name="a", count=3, scale=0.5, tags=("x", "y"))
    assert sample.canonical_bytes() == b'{"count":3,"name":"a","scale":0.5,"tags":["x","y"]}'
    assert Sample.parse(sample.canonical_bytes()) == sample


def test_an_integer_fills_a_float_field() -> None:
    assert Sample.parse(b'{"name":"a","count":1,"scale":2}').scale == 2.0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b'{"name":"a","count":"7","scale":1.0}', "count"),
        (b'{"name":"a","count":true,"scale":1.0}', "count"),
        (b'{"name":"a","count":1001,"scale":1.0}', "count"),
        (b'{"name":"a","count":-1,"scale":1.0}', "count"),
        (b'{"name":1,"count":1,"scale":1.0}', "name"),
        (b'{"name":"a","count":1,"scale":1.0,"extra":0}', "extra"),
        (b'{"name":"a","scale":1.0}', "count"),
        (b'["name"]', "not a JSON object"),
    ],
)
def test_a_strict_message_coerces_nothing_and_names_the_field(data: bytes, field: str) -> None:
    with pytest.raises(MessageError, match="Sample: ") as raised:
        Sample.parse(data)
    assert field in str(raised.value)


def test_refusals_do_not_echo_the_untrusted_input() -> None:
    with pytest.raises(MessageError) as raised:
        Sample.parse(b'{"name":"a","count":"secret-looking-value","scale":1.0}')
    assert "secret-looking-value" not in str(raised.value)


def test_a_strict_message_is_frozen() -> None:
    sample = Sample(name="a", count=3, scale=0.5)
    with pytest.raises(Exception, match="frozen"):
        sample.count = 4  # type: ignore[misc]
