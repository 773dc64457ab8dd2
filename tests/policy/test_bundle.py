"""One source of truth: the package ships exactly the policies/ folder, and its revision is stated once per place."""

from __future__ import annotations

import json
from pathlib import Path

from fedsilo.policy import PolicyBundle, default_bundle_path
from tests.conftest import ROOT

POLICIES = ROOT / "policies"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_package_ships_the_policies_folder_byte_for_byte() -> None:
    shipped, canonical = _files(default_bundle_path()), _files(POLICIES)
    assert shipped.keys() == canonical.keys()
    assert [name for name in shipped if shipped[name] != canonical[name]] == []


def test_the_bundle_manifest_names_the_revision_the_decisions_report() -> None:
    manifest = json.loads((POLICIES / ".manifest").read_text())
    assert manifest["roots"] == ["fedsilo"]
    assert manifest["revision"] == PolicyBundle.load(POLICIES).revision


def test_the_embedded_engine_loads_policies_and_data_but_not_tests() -> None:
    bundle = PolicyBundle.load()
    assert sorted(bundle.modules) == [
        "fedsilo/job/policy.rego",
        "fedsilo/lib/format.rego",
        "fedsilo/update/policy.rego",
    ]
    assert set(bundle.data["fedsilo"]["params"]) >= {"revision", "allowed_aggregation", "organization_max_epsilon"}
