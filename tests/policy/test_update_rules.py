"""One test per rule: an input that passes every rule but one is denied with exactly that
rule's reason, by the embedded engine and by the real OPA server alike."""

from __future__ import annotations

from typing import Any

import pytest

from fedsilo.policy import UPDATE_DECISION, PolicyBundle, PolicyEngine

from .conftest import valid_input

RULES: list[tuple[str, str, Any, str]] = [
    ("update", "signature_valid", False, "signature_invalid"),
    ("silo", "enrolled", False, "silo_not_enrolled"),
    ("silo", "name", "zed", "silo_not_in_job"),
    ("update", "round", 2, "stale_round"),
    ("ledger", "nonce_seen", True, "nonce_replayed"),
    ("update", "l2_norm", 5.01, "norm_cap_exceeded"),
    ("ledger", "epsilon_if_accepted", 8.2, "job_epsilon_exceeded"),
    ("ledger", "epsilon_lifetime_if_accepted", 6.1, "silo_epsilon_exceeded"),
    ("job", "aggregation", "plain", "aggregation_not_allowed"),
    ("update", "num_samples", 9, "too_few_samples"),
    ("update", "transport_problem", "payload_invalid: stream ended early", "payload_invalid"),
]


def test_a_valid_update_is_allowed(engine: PolicyEngine) -> None:
    verdict = engine.decide(UPDATE_DECISION, valid_input())
    assert verdict.accepted and verdict.reasons == ()
    assert verdict.policy_revision == PolicyBundle.load().data["fedsilo"]["params"]["revision"]


@pytest.mark.parametrize(("section", "field", "value", "code"), RULES, ids=[r[3] for r in RULES])
def test_each_rule_denies_with_its_own_reason(engine: PolicyEngine, section: str, field: str, value: Any, code: str) -> None:
    document = valid_input()
    document[section][field] = value
    verdict = engine.decide(UPDATE_DECISION, document)
    assert not verdict.accepted
    assert len(verdict.reasons) == 1 and verdict.reasons[0].startswith(code + ":"), verdict.reasons
