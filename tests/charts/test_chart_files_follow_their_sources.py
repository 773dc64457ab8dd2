"""The charts cannot drift from the repository's sources: their CRDs and RBAC rules are
generated (``scripts/generate-chart-files``), regenerating changes nothing, and what the charts
render grants exactly the rules of ``deploy/rbac``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CHARTS, HUB_CHART, ROOT, SILO_CHART, Helm

GENERATOR = ROOT / "scripts" / "generate-chart-files"
ROLES = {
    document["metadata"]["name"].removeprefix("fedsilo-operator").lstrip("-") or "operator": document["rules"]
    for document in yaml.safe_load_all((ROOT / "deploy" / "rbac" / "clusterroles.yaml").read_text())
    if document
}


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run([str(GENERATOR), *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def test_regenerating_the_chart_files_changes_nothing() -> None:
    result = generate("--check")
    assert result.returncode == 0, result.stderr


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The generator's sources and outputs, copied, so that a test may change them."""
    for folder in ("crds", "deploy", "charts"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


@pytest.mark.parametrize(
    ("edit", "stale"),
    [
        (
            "crds/fedsilo.io_silos.yaml",
            ["charts/fedsilo-silo/crds/fedsilo.io_silos.yaml", "charts/fedsilo/templates/crds/fedsilo.io_silos.yaml"],
        ),
        (
            "deploy/rbac/clusterroles.yaml",
            ["charts/fedsilo-silo/templates/_rules.tpl", "charts/fedsilo/templates/_rules.tpl"],
        ),
    ],
    ids=["crd", "rbac"],
)
def test_a_changed_source_makes_the_check_fail_naming_each_stale_file(tree: Path, edit: str, stale: list[str]) -> None:
    source = tree / edit
    source.write_text(
        source.read_text().replace("description:", "description: changed", 1).replace('"watch"', '"update"', 1)
    )
    before = {path: path.read_text() for path in (tree / "charts").rglob("*") if path.is_file()}
    checked = generate("--check", "--root", str(tree))
    assert checked.returncode == 1
    assert sorted(line.split(" is out of date")[0] for line in checked.stderr.splitlines()) == stale
    assert {path: path.read_text() for path in before} == before, "--check writes nothing"
    written = generate("--root", str(tree))
    assert written.returncode == 0 and sorted(written.stdout.split("regenerated ")[1:]) == [f"{s}\n" for s in stale]
    assert generate("--check", "--root", str(tree)).returncode == 0, "writing makes them current"


def test_a_stray_file_in_a_generated_folder_is_reported_and_removed(tree: Path) -> None:
    stray = tree / "charts" / "fedsilo" / "templates" / "crds" / "old.yaml"
    stray.write_text("{}\n")
    checked = generate("--check", "--root", str(tree))
    assert checked.returncode == 1 and "charts/fedsilo/templates/crds/old.yaml is out of date" in checked.stderr
    assert generate("--root", str(tree)).returncode == 0 and not stray.exists()


def crd_specs(path: Path) -> dict[str, Any]:
    return {d["metadata"]["name"]: d["spec"] for d in yaml.safe_load_all(path.read_text()) if d}


def test_the_hub_renders_the_crds_of_crds_folder(helm: Helm) -> None:
    rendered = {crd["metadata"]["name"]: crd["spec"] for crd in helm.render(HUB_CHART).of("CustomResourceDefinition")}
    expected = crd_specs(ROOT / "crds" / "fedsilo.io_federatedjobs.yaml") | crd_specs(
        ROOT / "crds" / "fedsilo.io_silos.yaml"
    )
    assert rendered == expected


@pytest.mark.parametrize("chart", CHARTS, ids=lambda chart: chart.name)
def test_crds_in_helms_crds_folder_are_the_sources(chart: Path) -> None:
    for path in (chart / "crds").glob("*.yaml"):
        assert crd_specs(path) == crd_specs(ROOT / "crds" / path.name)


def granted(objects: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(namespace, role part) -> rules, for every Role the chart binds to its ServiceAccount."""
    bound = {
        (b["metadata"]["namespace"], b["roleRef"]["name"])
        for b in objects
        if b["kind"] == "RoleBinding" and b["roleRef"]["kind"] == "Role"
    }
    return {
        (r["metadata"]["namespace"], r["metadata"]["name"].rsplit("-", 1)[1]): r["rules"]
        for r in objects
        if r["kind"] == "Role" and (r["metadata"]["namespace"], r["metadata"]["name"]) in bound
    }


@pytest.mark.parametrize(
    ("chart", "values", "expected"),
    [
        (HUB_CHART, [], {("fedsilo-system", "operator"), ("fedsilo-system", "hub")}),
        (
            HUB_CHART,
            ["role=both", "namespaces={jobs}", "siloNamespaces={silo-a,silo-b}"],
            {("jobs", "operator"), ("jobs", "hub"), ("silo-a", "operator"), ("silo-b", "operator")}
            | {("silo-a", "silo"), ("silo-b", "silo")},
        ),
        (SILO_CHART, ["silo.name=a"], {("fedsilo-system", "operator"), ("fedsilo-system", "silo")}),
        (
            SILO_CHART,
            ["silo.name=a", "silo.namespace=jobs", "workloadNamespace=silo-a"],
            {("jobs", "operator"), ("silo-a", "operator"), ("silo-a", "silo")},
        ),
    ],
    ids=["hub", "hub-both", "silo", "silo-across-namespaces"],
)
def test_rendered_rbac_grants_exactly_deploy_rbac_rules_where_they_are_needed(
    helm: Helm, chart: Path, values: list[str], expected: set[tuple[str, str]]
) -> None:
    objects = helm.render(chart, sets=values)
    grants = granted(objects)
    assert set(grants) == expected
    for (namespace, part), rules in grants.items():
        assert rules == ROLES[part], f"{part} rules in {namespace} differ from deploy/rbac"
    for binding in objects.of("RoleBinding"):
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": objects.one("ServiceAccount")["metadata"]["name"],
                "namespace": "fedsilo-system",
            }
        ]
    assert not objects.of("ClusterRoleBinding")
