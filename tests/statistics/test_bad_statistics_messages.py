"""Every statistics message a silo or the hub sends is refused when malformed, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from fedsilo.policy import PolicyInputError, UpdatePolicyInput
from fedsilo.protocol import MessageError, StatisticsClaims, StatisticsStep, pb, statistics_step_from_proto
from fedsilo.runner import run_statistics
from fedsilo.statistics import SiloRecords, StatisticsError

from .conftest import silos_of, tabular_spec

JOIN: dict[str, Any] = {"job": "job/run-1", "silo": "bank-a", "step": "join", "nonce": "ab12", "features": 14}
UPLOAD: dict[str, Any] = {
    "job": "job/run-1",
    "silo": "bank-a",
    "step": "moments",
    "nonce": "ab12",
    "vector_length": 64,
    "payload_digest": "sha256:" + "0" * 64,
}


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({**JOIN, "features": None}, "features"),
        ({**JOIN, "features": "14"}, "features"),
        ({**JOIN, "features": 0}, "features"),
        ({**JOIN, "payload_digest": UPLOAD["payload_digest"]}, "payload_digest"),
        ({**JOIN, "declined": "too small"}, "declined"),
        ({**JOIN, "step": "training"}, "step"),
        ({**JOIN, "job": "Job With Spaces"}, "job"),
        ({**JOIN, "extra": 1}, "extra"),
        ({**UPLOAD, "payload_digest": None}, "payload_digest"),
        ({**UPLOAD, "vector_length": 0}, "vector_length"),
        ({**UPLOAD, "features": 14}, "features"),
        ({**UPLOAD, "declined": "below_min_count: few"}, "declined"),
    ],
)
def test_malformed_statistics_claims_are_refused_naming_the_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(MessageError, match=field):
        StatisticsClaims.from_document(document)


def test_well_formed_claims_round_trip_through_their_signed_bytes() -> None:
    for document in (JOIN, {**JOIN, "declined": "below_min_count: fewer records than minCount"}, UPLOAD):
        claims = StatisticsClaims.from_document(document)
        assert StatisticsClaims.parse(claims.canonical_bytes()) == claims


@pytest.mark.parametrize(
    ("ranges_json", "problem"),
    [
        ("[]", "must be an object"),
        ('{"a": [0, 1]}', "not a column number"),
        ('{"1": [1, 0]}', "low < high"),
        ('{"1": [true, 2]}', "low < high"),
        ('{"1": [0]}', "low < high"),
        ('{"1": [0, NaN]}', "NaN"),
        ('{"1": [0, 1], "1": [0, 2]}', "duplicate"),
    ],
)
def test_malformed_ranges_from_the_hub_are_refused(ranges_json: str, problem: str) -> None:
    message = pb.StatisticsStep(ranges_json=ranges_json, participants=["bank-a"])
    setattr(message, "pass", 2)
    with pytest.raises(MessageError, match=problem):
        statistics_step_from_proto(message)


def test_the_hubs_ranges_are_read_by_column() -> None:
    message = pb.StatisticsStep(ranges_json='{"0": [-1.5, 2], "3": [0, 100]}', participants=["bank-a"])
    setattr(message, "pass", 2)
    step = statistics_step_from_proto(message)
    assert step == StatisticsStep(2, ("bank-a",), ((0, -1.5, 2.0), (3, 0.0, 100.0)))
    assert step.range_map() == {0: (-1.5, 2.0), 3: (0.0, 100.0)}


def test_a_policy_input_with_an_unknown_phase_is_refused() -> None:
    document = {
        "schema_version": "fedsilo.update/v1",
        "job": {
            "name": "job",
            "round": 1,
            "norm_cap": 1.0,
            "aggregation": "masked",
            "data_class": "internal",
            "silos": ["bank-a"],
            "phase": "warmup",
        },
        "silo": {"name": "bank-a", "enrolled": True},
        "update": {
            "signature_valid": True,
            "round": 1,
            "nonce": "n",
            "l2_norm": 0.0,
            "num_samples": 10,
            "payload_digest": "sha256:" + "0" * 64,
        },
        "ledger": {"nonce_seen": False},
    }
    with pytest.raises(PolicyInputError, match="phase"):
        UpdatePolicyInput.from_document(document)


def test_silos_whose_records_have_different_widths_fail_the_phase_naming_them() -> None:
    spec = tabular_spec(tabular={"recordsPerSilo": 200})
    silos = silos_of(spec)
    narrow = SiloRecords(silos[0].name, silos[0].records[:, :10], silos[0].signing_key)
    with pytest.raises(StatisticsError, match=r"different widths .*'bank-a': 10"):
        run_statistics("widths", spec, [narrow, *silos[1:]], step_seconds=60.0)
