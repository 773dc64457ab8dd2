"""A malformed manifest fails with every problem named by field path and fix, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsilo.api import ManifestError, load_manifest, parse_manifest

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart.yaml"


def _quickstart(replace: str = "", by: str = "") -> str:
    text = QUICKSTART.read_text()
    if replace:
        assert replace in text, replace
        text = text.replace(replace, by, 1)
    return text


def _problems(text: str) -> str:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "job.yaml")
    return str(caught.value)


def test_the_quickstart_is_valid() -> None:
    manifest = load_manifest(QUICKSTART)
    assert [s.metadata.name for s in manifest.silos] == ["hospital-a", "hospital-b", "hospital-c"]
    assert manifest.job.spec.aggregation.mode.value == "masked"


@pytest.mark.parametrize(
    ("replace", "by", "path", "fix"),
    [
        ("  rounds: 15\n", "", None, None),  # a missing field with a default is fine
        ("rounds: 15", "rounds: -3", "spec.rounds", "raise the value"),
        ("rounds: 15", "rounds: many", "spec.rounds", "whole number"),
        ("name: fedavg", "name: fedsgd", "spec.strategy.name", "allowed values"),
        ("minSilos: 2", "minSilos: 4", "spec", "minSilos (4) is above the number of silos (3)"),
        (
            "silos: [hospital-a, hospital-b, hospital-c]",
            "silos: [hospital-a, hospital-a, hospital-c]",
            "spec",
            "more than once",
        ),
        ("  model:\n    builtin: mlp\n", "  model:\n", "spec.model", "exactly one of builtin or factory"),
        ("  seed: 7\n", "  seed: 7\n  sede: 8\n", "spec.sede", "check its spelling"),
        ("source: digits", "source: csv", "spec.data", "data.path is required"),
    ],
)
def test_each_bad_field_is_named_with_its_fix(replace: str, by: str, path: str | None, fix: str | None) -> None:
    text = _quickstart(replace, by)
    if path is None:
        parse_manifest(text)
        return
    message = _problems(text)
    assert f"FederatedJob/quickstart: {path}" in message
    assert fix is not None and fix in message


def test_a_missing_required_field_is_named() -> None:
    message = _problems(_quickstart("  silos: [hospital-a, hospital-b, hospital-c]\n", ""))
    assert "spec.silos: Field required" in message
    assert "add the field" in message


def test_every_problem_is_listed_at_once() -> None:
    text = _quickstart("rounds: 15", "rounds: -1").replace("name: fedavg", "name: nope")
    message = _problems(text)
    assert "spec.rounds" in message and "spec.strategy.name" in message


def test_a_duplicated_silo_object_is_refused() -> None:
    text = _quickstart() + "---\napiVersion: fedsilo.io/v1alpha1\nkind: Silo\nmetadata:\n  name: hospital-a\n"
    assert "Silo/hospital-a: metadata.name: is defined twice" in _problems(text)


def test_a_silo_the_job_names_but_the_file_lacks_is_refused() -> None:
    message = _problems(_quickstart("hospital-c]", "hospital-d]"))
    assert "spec.silos[2]" in message and "hospital-d" in message


def test_wrong_api_version_and_unknown_kind_are_refused() -> None:
    assert "set apiVersion: fedsilo.io/v1alpha1" in _problems(
        _quickstart(
            "fedsilo.io/v1alpha1",
            "fedsilo.io/v2",
        )
    )
    assert "unknown kind 'Silos'" in _problems(_quickstart("kind: Silo\n", "kind: Silos\n"))


def test_invalid_yaml_is_refused() -> None:
    assert "not valid YAML" in _problems("kind: [unclosed")


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot be read"):
        load_manifest(tmp_path / "absent.yaml")
