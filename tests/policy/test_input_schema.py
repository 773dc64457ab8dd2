"""The policy input is a versioned, validated contract: typed builders, JSON Schemas that match
them, and documents that survive a round trip through the audit log."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from fedsilo.api import load_manifest
from fedsilo.policy import (
    JobPolicyInput,
    PolicyInputError,
    UpdatePolicyInput,
    input_digest,
)
from tests.conftest import ROOT

from .conftest import VALID

SCHEMAS = ROOT / "src" / "fedsilo" / "policy" / "schema"


def test_a_document_round_trips_through_json() -> None:
    document = json.loads(json.dumps(VALID.to_document()))
    assert UpdatePolicyInput.from_document(document) == VALID
    assert input_digest(document) == input_digest(VALID.to_document())


def test_the_document_names_its_schema_version_and_states_absent_values_as_null() -> None:
    document = VALID.model_copy(
        update={"update": VALID.update.model_copy(update={"epsilon_round": None})}
    ).to_document()
    assert document["schema_version"] == "fedsilo.update/v1"
    assert document["update"]["epsilon_round"] is None and document["update"]["transport_problem"] is None


def _broken(section: str, field: str, value: Any) -> dict[str, Any]:
    document = VALID.to_document()
    document[section][field] = value
    return document


@pytest.mark.parametrize(
    ("section", "field", "value", "complaint"),
    [
        ("update", "round", True, "update.round"),
        ("update", "l2_norm", "3.0", "update.l2_norm"),
        ("job", "aggregation", "shuffled", "job.aggregation"),
        ("ledger", "nonce_seen", None, "ledger.nonce_seen"),
        ("silo", "extra", 1, "silo.extra"),
    ],
)
def test_an_invalid_document_is_refused_naming_the_field(section: str, field: str, value: Any, complaint: str) -> None:
    with pytest.raises(PolicyInputError, match=complaint.replace(".", r"\.")):
        UpdatePolicyInput.from_document(_broken(section, field, value))


def test_a_number_json_cannot_carry_is_refused() -> None:
    with pytest.raises(PolicyInputError):
        UpdatePolicyInput.from_document(_broken("update", "l2_norm", math.nan))


def test_the_design_example_is_a_valid_input_once_completed() -> None:
    """The document in DESIGN.md, with the fields v1 added (schema version, data class, minimum, silos, nonce flag)."""
    example = {
        "schema_version": "fedsilo.update/v1",
        "job": {"name": "...", "round": 7, "norm_cap": 5.0, "max_epsilon": 8.0, "aggregation": "masked",
                "data_class": "sensitive", "min_samples": 10, "delta": 1e-5, "silos": ["a", "b", "c"]},
        "silo": {"name": "hospital-a", "enrolled": True, "max_epsilon": 6.0},
        "update": {"signature_valid": True, "round": 7, "nonce": "...", "l2_norm": 3.1, "num_samples": 1200,
                   "epsilon_round": 0.21, "payload_digest": "sha256:..."},
        "ledger": {"epsilon_spent": 2.7, "epsilon_if_accepted": 2.91, "nonce_seen": False, "seen_nonces": 41},
    }  # fmt: skip
    assert UpdatePolicyInput.from_document(example).ledger.epsilon_if_accepted == 2.91


def test_a_job_input_is_built_from_a_manifest() -> None:
    manifest = load_manifest(ROOT / "examples" / "quickstart.yaml")
    document = JobPolicyInput.from_job(manifest.job).to_document()
    assert document["schema_version"] == "fedsilo.job/v1"
    assert document["job"]["name"] == manifest.job.metadata.name
    assert document["job"]["aggregation"] == manifest.job.spec.aggregation.mode.value
    assert JobPolicyInput.from_document(document).to_document() == document
