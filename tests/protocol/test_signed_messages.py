"""Signed metadata parses strictly: the bytes a silo signs are the only form accepted."""

from __future__ import annotations

import json

import pytest

from fedsilo.protocol import MessageError, UpdateMetadata, canonical_json


def _metadata() -> UpdateMetadata:
    return UpdateMetadata(
        job="j",
        round=3,
        silo="a",
        nonce="00ff",
        l2_norm=1.5,
        num_samples=10,
        vector_length=11,
        dtype="uint32",
        payload_digest="sha256:00",
        epsilon_round=None,
        fedsilo_version="0.1.0",
        architecture="sha256:01",
        mechanism=None,
    )


def test_canonical_bytes_round_trip() -> None:
    metadata = _metadata()
    assert UpdateMetadata.parse(metadata.canonical_bytes()) == metadata


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"round": "3"}, "UpdateMetadata: round: Input should be a valid integer"),
        ({"extra": 1}, "UpdateMetadata: extra: Extra inputs are not permitted"),
        ({"num_samples": True}, "UpdateMetadata: num_samples: Input should be a valid integer"),
    ],
)
def test_wrong_fields_are_named(change: dict[str, object], message: str) -> None:
    document = json.loads(_metadata().canonical_bytes()) | change
    with pytest.raises(MessageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        UpdateMetadata.parse(json.dumps(document).encode())


def test_a_missing_field_and_non_json_are_refused() -> None:
    document = json.loads(_metadata().canonical_bytes())
    del document["nonce"]
    with pytest.raises(MessageError, match="UpdateMetadata: nonce: Field required"):
        UpdateMetadata.parse(json.dumps(document).encode())
    with pytest.raises(MessageError, match="not JSON"):
        UpdateMetadata.parse(b"garbage")
    with pytest.raises(MessageError, match="not UTF-8"):
        UpdateMetadata.parse(b"\x80garbage")
