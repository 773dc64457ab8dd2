"""Job admission: each rule refuses a job that breaks only it, on both engines; the examples are admitted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fedsilo.api import load_manifest
from fedsilo.policy import JobPolicyInput, PolicyEngine, PrivacyFacts
from tests.conftest import ROOT

VALID = JobPolicyInput.model_validate(
    {
        "job": {
            "name": "j",
            "aggregation": "masked",
            "data_class": "sensitive",
            "silos": ("a", "b", "c"),
            "min_silos": 2,
            "norm_cap": 5.0,
            "min_samples": 10,
            "max_epsilon": 8.0,
            "privacy": PrivacyFacts(mode="silo", target_epsilon=6.0, delta=1e-5),
        }
    }
)


def _job(**changes: Any) -> JobPolicyInput:
    return VALID.model_copy(update={"job": VALID.job.model_copy(update=changes)})


RULES: list[tuple[str, JobPolicyInput]] = [
    ("aggregation_not_allowed", _job(aggregation="plain")),
    ("epsilon_above_organization_max", _job(max_epsilon=50.0, privacy=PrivacyFacts(mode="silo", target_epsilon=6.0))),
    ("target_epsilon_above_ceiling", _job(privacy=PrivacyFacts(mode="record", target_epsilon=9.0))),
    ("epsilon_ceiling_missing", _job(max_epsilon=None)),
    ("too_few_silos_for_masking", _job(silos=("a", "b"), min_silos=1)),
]


def test_a_masked_sensitive_private_job_is_admitted(engine: PolicyEngine) -> None:
    assert engine.decide_job(VALID).allow


@pytest.mark.parametrize(("code", "job"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_refuses_with_its_own_reason(engine: PolicyEngine, code: str, job: JobPolicyInput) -> None:
    decision = engine.decide_job(job)
    assert decision.codes == (code,), decision.reasons


def test_sensitive_data_without_privacy_needs_no_ceiling(engine: PolicyEngine) -> None:
    assert engine.decide_job(_job(max_epsilon=None, privacy=PrivacyFacts(mode="none"))).allow


def test_a_target_above_the_organization_maximum_is_refused_without_a_job_ceiling(engine: PolicyEngine) -> None:
    job = _job(data_class="internal", max_epsilon=None, privacy=PrivacyFacts(mode="silo", target_epsilon=12.0))
    assert engine.decide_job(job).reasons == (
        "target_epsilon_above_ceiling: the privacy target epsilon 12 is above the ceiling 10",
    )


@pytest.mark.parametrize("manifest", sorted(ROOT.glob("examples/**/*.yaml")), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_examples_are_admitted(engine: PolicyEngine, manifest: Path) -> None:
    decision = engine.decide_job(JobPolicyInput.from_job(load_manifest(manifest).job))
    assert decision.allow, decision.reasons
