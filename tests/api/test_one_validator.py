"""One verdict: every hostile object of the corpus gets the same answer from the real API server
(the committed CRDs, server-side apply) and from ``fedsilo validate``, and a refusal names the field."""

from __future__ import annotations

import copy
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsilo.cli import main
from fedsilo_testing import ControlPlane, KubectlError, install_crds

CORPUS = Path(__file__).parent / "corpus"
ADMISSION = Path(__file__).parents[2] / "deploy" / "admission"
BASE_JOB: dict[str, Any] = {"silos": ["hospital-a", "hospital-b"], "model": {"builtin": "mlp"}}


def _cases() -> dict[str, dict[str, Any]]:
    cases = {}
    for path in sorted(CORPUS.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8")):
            assert ("field" in case) != ("harmless" in case), case["case"]
            assert case["case"] not in cases, f"two cases called {case['case']!r}"
            cases[case["case"]] = case
    return cases


CASES = _cases()


def _merged(base: Any, patch: Any) -> Any:
    """``patch`` over ``base``: mappings merge, ``None`` removes, anything else replaces."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merged(merged.get(key), value)
    return merged


def hostile_object(case: dict[str, Any]) -> dict[str, Any]:
    """The object a case describes."""
    kind = case.get("kind", "FederatedJob")
    name = case.get("name", "job" if kind == "FederatedJob" else "hospital-a")
    obj: dict[str, Any] = {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, **case.get("metadata", {})},
    }
    if "raw" in case:
        obj.update(case["raw"])
    elif kind == "FederatedJob":
        obj["spec"] = _merged(BASE_JOB, case.get("spec", {}))
    else:
        obj["spec"] = case.get("spec", {})
    return obj


def _valid_name(name: object) -> bool:
    return isinstance(name, str) and bool(name) and name.isascii() and name == name.strip() and name.islower()


def manifest_for(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """``obj`` with the companions a run manifest needs: the silos a job names, or a job naming a silo."""
    if obj["kind"] == "Silo":
        name = obj["metadata"]["name"]
        companion = {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "FederatedJob",
            "metadata": {"name": "companion"},
            "spec": {"silos": [name], "minSilos": 1, "aggregation": {"mode": "plain"}, "model": {"builtin": "mlp"}},
        }
        return [companion, obj]
    spec = obj.get("spec")
    named = spec.get("silos") if isinstance(spec, dict) else None
    silos = sorted({name for name in named if _valid_name(name)}) if isinstance(named, list) else []
    return [obj, *({"apiVersion": "fedsilo.io/v1alpha1", "kind": "Silo", "metadata": {"name": s}} for s in silos)]


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane) -> str:
    """A namespace of a control plane with the CRDs and the shipped admission policy in force."""
    install_crds(control_plane)
    control_plane.kubectl("apply", "--server-side", "-f", str(ADMISSION))
    name = control_plane.create_namespace(f"corpus-{uuid.uuid4().hex[:8]}")
    probe = {"apiVersion": "fedsilo.io/v1alpha1", "kind": "Silo", "metadata": {"name": "probe"}}
    probe["metadata"]["annotations"] = {"fedsilo.io/workload-namespace": "kube-system"}
    deadline = time.monotonic() + 60
    # The API server compiles a new policy asynchronously: wait until it refuses.
    while server_verdict(control_plane, name, yaml.safe_dump(probe)) is None:
        assert time.monotonic() < deadline, "the ValidatingAdmissionPolicy never took effect"
        time.sleep(0.5)
    return name


def server_verdict(cluster: ControlPlane, namespace: str, text: str) -> str | None:
    """None if the API server accepts ``text``, else its refusal."""
    try:
        cluster.kubectl(
            "apply",
            "--server-side",
            "--field-manager=corpus",
            "--dry-run=server",
            "-n",
            namespace,
            "-f",
            "-",
            input=text,
        )
    except KubectlError as refused:
        return refused.stderr
    return None


def local_verdict(text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str | None:
    """None if ``fedsilo validate`` accepts ``text``, else what it printed."""
    path = tmp_path / "manifest.yaml"
    path.write_text(text, encoding="utf-8")
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    assert "Traceback" not in err
    return None if code == 0 else err


def test_the_corpus_holds_at_least_sixty_hostile_objects() -> None:
    assert len([case for case in CASES.values() if "field" in case]) >= 60


@pytest.mark.integration
@pytest.mark.parametrize("name", CASES, ids=list(CASES))
def test_the_api_server_and_fedsilo_validate_give_one_verdict(
    name: str, control_plane: ControlPlane, namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    obj = hostile_object(case)
    server = server_verdict(control_plane, namespace, yaml.safe_dump(obj, allow_unicode=True))
    local = local_verdict(yaml.safe_dump_all(manifest_for(obj), allow_unicode=True), tmp_path, capsys)
    if "harmless" in case:
        assert server is None, f"the API server refuses a harmless object: {server}"
        assert local is None, f"fedsilo validate refuses a harmless object: {local}"
        return
    assert server is not None, "the API server accepts it"
    assert local is not None, "fedsilo validate accepts it"
    assert case["field"] in server, f"the API server's refusal does not name {case['field']!r}: {server}"
    assert case["field"] in local, f"fedsilo validate's refusal does not name {case['field']!r}: {local}"
    assert "Fix:" in local
