"""One test per rule: an update that passes every rule but one is denied with exactly that
rule's reason, by the embedded engine and by the real OPA server alike."""

from __future__ import annotations

from typing import Any

import pytest

from fedsilo.policy import UPDATE_DECISION, PolicyBundle, PolicyEngine

from .conftest import VALID, varied

# (rule code, the one change that breaks it)
RULES: list[tuple[str, dict[str, dict[str, Any]]]] = [
    ("signature_invalid", {"update": {"signature_valid": False}}),
    ("silo_not_enrolled", {"silo": {"enrolled": False}}),
    ("silo_not_in_job", {"silo": {"name": "z"}}),
    ("stale_round", {"update": {"round": 2}}),
    ("nonce_replayed", {"ledger": {"nonce_seen": True}}),
    ("payload_digest_mismatch", {"update": {"transport_problem": "payload_digest_mismatch: the payload differs"}}),
    ("transport_problem", {"update": {"transport_problem": "stream broke"}}),
    ("claim_out_of_range", {"update": {"l2_norm": -1.0}}),
    ("norm_cap_exceeded", {"update": {"l2_norm": 5.01}}),
    ("job_epsilon_exceeded", {"ledger": {"epsilon_if_accepted": 8.2}}),
    ("silo_epsilon_exceeded", {"ledger": {"epsilon_lifetime_if_accepted": 6.1}}),
    ("epsilon_unaccounted", {"silo": {"max_epsilon": None}, "ledger": {"epsilon_if_accepted": None}}),
    ("aggregation_not_allowed", {"job": {"aggregation": "plain"}}),
    ("too_few_samples", {"update": {"num_samples": 9}}),
]


def test_a_valid_update_is_allowed(engine: PolicyEngine) -> None:
    decision = engine.decide_update(VALID)
    assert decision.allow and decision.reasons == ()
    assert decision.policy_revision == PolicyBundle.load().revision


@pytest.mark.parametrize(("code", "change"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_denies_with_its_own_reason(
    engine: PolicyEngine, code: str, change: dict[str, dict[str, Any]]
) -> None:
    decision = engine.decide_update(varied(**change))
    assert not decision.allow
    assert decision.codes == (code,), decision.reasons


def test_a_claim_of_fewer_than_zero_records_is_out_of_range_and_too_few(engine: PolicyEngine) -> None:
    assert engine.decide_update(varied(update={"num_samples": -1})).codes == ("claim_out_of_range", "too_few_samples")


def test_reasons_name_the_numbers_that_broke_the_rule(engine: PolicyEngine) -> None:
    decision = engine.decide_update(varied(update={"l2_norm": 7.123456789012}, ledger={"epsilon_if_accepted": 9.0}))
    assert decision.reasons == (
        "job_epsilon_exceeded: accepting would bring the silo's epsilon in this job to 9, above the job's ceiling 8",
        "norm_cap_exceeded: the update's L2 norm 7.123456789 is above the job's norm cap 5",
    )


def test_a_transport_reason_is_passed_through_verbatim(engine: PolicyEngine) -> None:
    problem = 'payload_invalid: update holds "NaN" values \\ here'
    assert engine.decide_update(varied(update={"transport_problem": problem})).reasons == (problem,)


def test_a_norm_exactly_at_the_cap_is_allowed(engine: PolicyEngine) -> None:
    assert engine.decide_update(varied(update={"l2_norm": 5.0})).allow


def test_without_ceilings_epsilon_is_not_judged(engine: PolicyEngine) -> None:
    decision = engine.decide_update(
        varied(
            job={"max_epsilon": None},
            silo={"max_epsilon": None},
            ledger={"epsilon_if_accepted": None, "epsilon_lifetime_if_accepted": None},
        )
    )
    assert decision.allow, decision.reasons


def test_the_silo_ceiling_falls_back_to_the_job_spend(engine: PolicyEngine) -> None:
    decision = engine.decide_update(varied(ledger={"epsilon_if_accepted": 7.0, "epsilon_lifetime_if_accepted": None}))
    assert decision.codes == ("silo_epsilon_exceeded",)


def test_the_default_minimum_applies_when_the_job_sets_none(engine: PolicyEngine) -> None:
    assert engine.decide_update(varied(job={"min_samples": None}, update={"num_samples": 1})).allow
    assert engine.decide_update(varied(job={"min_samples": None}, update={"num_samples": 0})).codes == (
        "too_few_samples",
    )


def test_plain_aggregation_is_allowed_for_internal_data(engine: PolicyEngine) -> None:
    assert engine.decide_update(varied(job={"aggregation": "plain", "data_class": "internal"})).allow


@pytest.mark.parametrize("path", [("update", "l2_norm"), ("ledger", "nonce_seen"), ("job", "silos")])
def test_a_missing_field_denies_instead_of_skipping_its_rule(engine: PolicyEngine, path: tuple[str, str]) -> None:
    document = VALID.to_document()
    del document[path[0]][path[1]]
    decision = engine.decide(UPDATE_DECISION, document)
    assert not decision.allow
    assert any(r.startswith(f"input_invalid: {'.'.join(path)} is missing, needs ") for r in decision.reasons)


def test_a_value_of_the_wrong_type_is_denied(engine: PolicyEngine) -> None:
    document = VALID.to_document()
    document["update"]["l2_norm"] = "3.0"
    decision = engine.decide(UPDATE_DECISION, document)
    assert decision.reasons == ("input_invalid: update.l2_norm is a string, needs number",)


def test_an_unknown_schema_version_is_denied(engine: PolicyEngine) -> None:
    document = VALID.to_document() | {"schema_version": "fedsilo.update/v0"}
    decision = engine.decide(UPDATE_DECISION, document)
    assert decision.reasons == ("schema_version_unsupported: fedsilo.update/v0 is not one of fedsilo.update/v1",)


def test_an_empty_document_is_denied(engine: PolicyEngine) -> None:
    decision = engine.decide(UPDATE_DECISION, {})
    assert not decision.allow and "signature_invalid" not in decision.codes
    assert set(decision.codes) == {"input_invalid", "schema_version_unsupported"}
