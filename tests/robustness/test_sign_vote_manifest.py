"""spec.strategy sign_vote and signStepSize: bad input is refused naming the field and the fix
(the same cases run against the real API server in ``tests/api/corpus/signvote.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsilo.api import ManifestError, StrategyName, parse_manifest

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart.yaml"


def _manifest(**spec: Any) -> str:
    documents = list(yaml.safe_load_all(QUICKSTART.read_text()))
    documents[0]["spec"].update(spec)
    return yaml.safe_dump_all(documents, sort_keys=False)


def _problems(**spec: Any) -> str:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_manifest(**spec), "job.yaml")
    return str(caught.value)


def test_a_sign_vote_job_reads_its_step_size() -> None:
    job = parse_manifest(
        _manifest(strategy={"name": "sign_vote", "signStepSize": 0.05}, aggregation={"mode": "plain"}), "job.yaml"
    ).job
    assert job.spec.strategy.name is StrategyName.SIGN_VOTE
    assert job.spec.strategy.sign_step_size == 0.05


@pytest.mark.parametrize("step", [0, -0.1, 1.5, "big"])
def test_a_step_size_outside_its_bounds_is_refused_naming_the_field(step: object) -> None:
    problems = _problems(strategy={"name": "sign_vote", "signStepSize": step}, aggregation={"mode": "plain"})
    assert "spec.strategy.signStepSize" in problems


def test_a_step_size_with_another_strategy_is_refused_naming_the_fix() -> None:
    problems = _problems(strategy={"name": "fedavg", "signStepSize": 0.1})
    assert "signStepSize is the step of strategy sign_vote only" in problems


def test_the_vote_under_masking_is_accepted() -> None:
    job = parse_manifest(_manifest(strategy={"name": "sign_vote"}, aggregation={"mode": "masked"}), "job.yaml").job
    assert job.spec.strategy.name is StrategyName.SIGN_VOTE


def test_the_vote_under_homomorphic_aggregation_is_refused_naming_the_fix() -> None:
    problems = _problems(strategy={"name": "sign_vote"}, aggregation={"mode": "homomorphic"})
    assert "strategy sign_vote does not combine with aggregation.mode homomorphic" in problems
    assert "use aggregation.mode masked" in problems


@pytest.mark.parametrize(
    "compression", [{"bits": 8}, {"subset": 0.5, "bits": 4}, {"adaptive": {"levels": [8, 4], "bytesBudget": 4096}}]
)
def test_the_masked_vote_with_compression_is_refused_naming_the_field(compression: dict[str, Any]) -> None:
    problems = _problems(strategy={"name": "sign_vote"}, aggregation={"mode": "masked"}, compression=compression)
    assert "spec.compression does not combine with strategy sign_vote" in problems
    assert "remove spec.compression" in problems


def test_the_other_robust_rules_under_masking_are_still_refused() -> None:
    problems = _problems(strategy={"name": "median"}, aggregation={"mode": "masked"})
    assert "needs each silo's update in the clear" in problems and "aggregation.mode plain" in problems
