"""A round's compression goes out with its plan and comes back signed in updates, parsed strictly."""

from __future__ import annotations

import pytest

from fedsilo.protocol import MessageError, RoundCompression, RoundPlan, plan_from_proto, plan_to_proto

SETTINGS = RoundCompression(
    bits=8, word_bits=12, value_range=4.0, weight_scale=412, subset_seed=2**55, subset_offset=960, subset_size=481
)


def test_a_plan_carries_its_compression_there_and_back() -> None:
    plan = RoundPlan(round=3, participants=("a", "b"), vector_length=4811, compression=SETTINGS)
    assert plan_from_proto(plan_to_proto(plan)) == plan
    uncompressed = RoundPlan(round=3)
    assert plan_to_proto(uncompressed).compression_json == ""
    assert plan_from_proto(plan_to_proto(uncompressed)).compression is None


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ('{"bits": 8}', "word_bits"),
        (SETTINGS.canonical_bytes().decode().replace('"bits":8', '"bits":33'), "bits"),
        (SETTINGS.canonical_bytes().decode().replace('"word_bits":12', '"word_bits":"12"'), "word_bits"),
        (SETTINGS.canonical_bytes().decode().replace("}", ',"extra":1}'), "extra"),
        (SETTINGS.canonical_bytes().decode().replace('"weight_scale":412', '"weight_scale":0'), "weight_scale"),
    ],
)
def test_a_malformed_compression_document_is_refused_naming_the_field(document: str, field: str) -> None:
    message = plan_to_proto(RoundPlan(round=1))
    message.compression_json = document
    with pytest.raises(MessageError, match=field):
        plan_from_proto(message)
