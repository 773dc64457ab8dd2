"""A mid-job edit of every field a running job's guarantees rest on is refused by the API server
(CEL transition rules), naming the field; the documented legitimate edits go through."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from fedsilo.api._crd import IMMUTABLE_JOB_FIELDS
from fedsilo_testing import ControlPlane, KubectlError

pytestmark = pytest.mark.integration

KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
OTHER_KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

JOB_SPEC: dict[str, Any] = {
    "silos": ["hospital-a", "hospital-b", "hospital-c"],
    "model": {"builtin": "mlp"},
    "aggregation": {"mode": "masked", "threshold": 3},
    "privacy": {"mode": "silo", "targetEpsilon": 3.0},
    "policy": {"maxEpsilon": 5.0, "dataClass": "sensitive", "normCap": 5.0},
}
# Every guarded field, with an edit that would weaken what partners agreed to.
GUARDED: dict[str, dict[str, Any]] = {
    "silos": {"silos": ["hospital-a", "hospital-b", "mallory"]},
    "model": {"model": {"builtin": "cnn"}},
    "aggregation": {"aggregation": {"mode": "masked", "threshold": 2}},
    "privacy": {"privacy": {"mode": "silo", "targetEpsilon": 1000.0}},
    "policy": {"policy": {"maxEpsilon": 5.0, "dataClass": "public", "normCap": 5.0}},
    "personalization": {"personalization": {"privateHead": True}},
}
EDITABLE: dict[str, dict[str, Any]] = {
    "more rounds": {"rounds": 40},
    "a longer round timeout": {"roundTimeoutSeconds": 600},
    "another learning rate": {"training": {"learningRate": 0.01}},
    "more trainer memory": {"resources": {"trainer": {"requests": {"memory": "2Gi"}, "limits": {"memory": "4Gi"}}}},
}


def apply(cluster: ControlPlane, namespace: str, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "--server-side", "--field-manager=user", "-n", namespace, "-f", "-", input=json.dumps(obj))


def job(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "fedsilo.io/v1alpha1", "kind": "FederatedJob", "metadata": {"name": "trial"}, "spec": spec}


def silo(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "fedsilo.io/v1alpha1", "kind": "Silo", "metadata": {"name": "hospital-a"}, "spec": spec}


@pytest.fixture
def running(cluster: ControlPlane) -> str:
    namespace = cluster.create_namespace(f"guard-{uuid.uuid4().hex[:8]}")
    apply(cluster, namespace, job(JOB_SPEC))
    return namespace


def test_every_guarded_field_is_covered() -> None:
    assert set(GUARDED) == {field for field, _ in IMMUTABLE_JOB_FIELDS}


@pytest.mark.parametrize("field", GUARDED, ids=list(GUARDED))
def test_a_guarded_field_cannot_be_edited_under_a_job(cluster: ControlPlane, running: str, field: str) -> None:
    with pytest.raises(KubectlError) as refused:
        apply(cluster, running, job({**JOB_SPEC, **GUARDED[field]}))
    assert f"spec.{field} cannot change once the job exists" in refused.value.stderr


@pytest.mark.parametrize("field", ["privacy", "policy", "aggregation"])
def test_a_guarded_block_cannot_be_removed(cluster: ControlPlane, running: str, field: str) -> None:
    with pytest.raises(KubectlError) as refused:
        cluster.kubectl(
            "patch",
            "-n",
            running,
            "federatedjob",
            "trial",
            "--type=json",
            "-p",
            json.dumps([{"op": "remove", "path": f"/spec/{field}"}]),
        )
    assert f"spec.{field} cannot change once the job exists" in refused.value.stderr


@pytest.mark.parametrize("edit", EDITABLE, ids=list(EDITABLE))
def test_a_documented_edit_goes_through(cluster: ControlPlane, running: str, edit: str) -> None:
    apply(cluster, running, job({**JOB_SPEC, **EDITABLE[edit]}))


def test_a_silo_ceiling_may_go_down_but_not_up_and_its_key_may_rotate_but_not_go(
    cluster: ControlPlane, namespace: str
) -> None:
    apply(cluster, namespace, silo({"maxEpsilon": 8.0, "identity": {"publicKey": KEY}}))
    apply(cluster, namespace, silo({"maxEpsilon": 6.0, "identity": {"publicKey": KEY}}))
    with pytest.raises(KubectlError) as raised:
        apply(cluster, namespace, silo({"maxEpsilon": 9.0, "identity": {"publicKey": KEY}}))
    assert "spec.maxEpsilon may only be lowered" in raised.value.stderr
    with pytest.raises(KubectlError) as removed:
        apply(cluster, namespace, silo({"identity": {"publicKey": KEY}}))
    assert "spec.maxEpsilon may only be lowered" in removed.value.stderr
    # Rotation: a new key is written in place; running jobs take it at their next round boundary.
    apply(cluster, namespace, silo({"maxEpsilon": 6.0, "identity": {"publicKey": OTHER_KEY}}))
    with pytest.raises(KubectlError) as dropped:
        apply(cluster, namespace, silo({"maxEpsilon": 6.0}))
    assert "spec.identity.publicKey cannot be removed once set" in dropped.value.stderr
    # Suspension is an edit of a running silo too, and lifting it is removing the field.
    apply(
        cluster,
        namespace,
        silo({"maxEpsilon": 6.0, "identity": {"publicKey": OTHER_KEY}, "suspended": {"reason": "review"}}),
    )
    apply(cluster, namespace, silo({"maxEpsilon": 6.0, "identity": {"publicKey": OTHER_KEY}}))
