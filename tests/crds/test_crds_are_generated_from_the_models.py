"""The committed CRDs are exactly what the pydantic models generate, and read like controller-gen's."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from fedsilo.api import load_manifest
from fedsilo.api._crd import IMMUTABLE_JOB_FIELDS

from .conftest import CRDS, EXAMPLES


def crd(plural: str) -> dict[str, Any]:
    return yaml.safe_load((CRDS / f"fedsilo.io_{plural}.yaml").read_text())


def walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every property below ``schema``, with its dotted path."""
    found = []
    for name, child in (schema.get("properties") or {}).items():
        found.append((f"{path}.{name}", child))
        found += walk(child, f"{path}.{name}")
        if child.get("type") == "array":
            found += walk(child["items"], f"{path}.{name}[]")
        if isinstance(child.get("additionalProperties"), dict):
            found += walk(child["additionalProperties"], f"{path}.{name}{{}}")
    return found


@pytest.mark.parametrize("plural", ["federatedjobs", "silos"])
def test_every_field_has_a_description(plural: str) -> None:
    schema = crd(plural)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    undescribed = [path for path, node in walk(schema) if "description" not in node and path != ".metadata"]
    assert undescribed == []


@pytest.mark.parametrize("plural", ["federatedjobs", "silos"])
def test_the_schema_is_structural(plural: str) -> None:
    schema = crd(plural)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        assert "type" in node, path
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title", "nullable"} & node.keys(), path


def test_the_crds_carry_status_printer_columns_short_names_and_categories() -> None:
    job, silo = crd("federatedjobs"), crd("silos")
    version = job["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column for column in version["additionalPrinterColumns"]}
    assert [name for name, column in columns.items() if not column.get("priority")] == [
        "Ready",
        "Phase",
        "Round",
        "Silos",
        "Epsilon",
        "Age",
    ]
    assert all(
        column.get("priority") == 1
        for name, column in columns.items()
        if name
        not in {
            "Ready",
            "Phase",
            "Round",
            "Silos",
            "Epsilon",
            "Age",
        }
    )
    assert job["spec"]["names"]["shortNames"] == ["fj", "fedjob"]
    assert silo["spec"]["names"]["categories"] == job["spec"]["names"]["categories"] == ["fedsilo"]
    assert silo["spec"]["versions"][0]["subresources"] == {"status": {}}


def test_bounds_enums_and_cel_rules_mirror_the_models() -> None:
    spec = crd("federatedjobs")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["minSilos"]["minimum"] == 1
    assert spec["properties"]["silos"]["x-kubernetes-list-type"] == "set"
    assert spec["properties"]["aggregation"]["properties"]["mode"]["enum"] == ["masked", "plain", "homomorphic"]
    test_fraction = spec["properties"]["data"]["properties"]["testFraction"]
    assert test_fraction["exclusiveMinimum"] is True and test_fraction["minimum"] == 0
    rules = [rule["rule"] for rule in spec["x-kubernetes-validations"]]
    assert any("self.minSilos <= size(self.silos)" in rule for rule in rules)
    assert any("oldSelf" in rule for rule in rules), "the aggregation and privacy modes are fixed at creation"
    model = spec["properties"]["model"]
    assert model["x-kubernetes-validations"][0]["rule"] == "has(self.builtin) != has(self.factory)"


def test_status_conditions_merge_by_type() -> None:
    status = crd("federatedjobs")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {"type", "status", "reason", "message", "lastTransitionTime"}


@pytest.mark.parametrize("example", sorted(EXAMPLES.rglob("*.yaml")), ids=lambda path: path.name)
def test_every_example_validates_against_the_models(example: Any) -> None:
    load_manifest(example)


@pytest.mark.parametrize("plural", ["federatedjobs", "silos"])
def test_every_description_states_its_default_and_bounds(plural: str) -> None:
    schema = crd(plural)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        description = node.get("description", "")
        if "default" in node and not isinstance(node["default"], dict):
            assert f"Default: {json.dumps(node['default'])}." in description, path
        if "minimum" in node or "maximum" in node:
            assert "Bounds: " in description, path
        if "maxItems" in node:
            assert f"at most {node['maxItems']}" in description, path


def test_immutable_fields_say_so_and_how_to_change_them() -> None:
    spec = crd("federatedjobs")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for field, _ in IMMUTABLE_JOB_FIELDS:
        assert "Immutable" in spec["properties"][field]["description"], field
    assert "Immutable" not in spec["properties"]["rounds"]["description"]
    silo = crd("silos")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert "May only be lowered" in silo["maxEpsilon"]["description"]
    assert "to rotate the key, write the new one here" in silo["identity"]["properties"]["publicKey"]["description"]


def test_the_silo_columns_show_the_ceiling_and_no_second_namespace() -> None:
    columns = {c["name"] for c in crd("silos")["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert "Ceiling" in columns and "Namespace" not in columns
