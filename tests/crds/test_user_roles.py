"""The roles shipped for users fold into Kubernetes' view, edit and admin roles, and a user holding
them can do what the role says and nothing more (checked by the real API server's authorizer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsilo_testing import ControlPlane

ROLES = Path(__file__).parents[2] / "deploy" / "rbac" / "aggregated.yaml"
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def roles() -> dict[str, dict[str, Any]]:
    return {role["metadata"]["name"]: role for role in yaml.safe_load_all(ROLES.read_text())}


def test_view_folds_into_view_edit_and_admin_and_edit_into_edit_and_admin() -> None:
    found = roles()
    aggregated = {
        name: {k.removeprefix(AGGREGATE) for k in r["metadata"]["labels"] if k.startswith(AGGREGATE)}
        for name, r in found.items()
    }
    assert aggregated == {"fedsilo-view": {"view", "edit", "admin"}, "fedsilo-edit": {"edit", "admin"}}


def test_no_user_role_writes_status() -> None:
    for role in roles().values():
        for rule in role["rules"]:
            if set(rule["verbs"]) - {"get", "list", "watch"}:
                assert not any(resource.endswith("/status") for resource in rule["resources"])


@pytest.mark.integration
@pytest.mark.parametrize(
    ("role", "verb", "resource", "allowed"),
    [
        ("fedsilo-view", "list", "federatedjobs.fedsilo.io", True),
        ("fedsilo-view", "get", "silos.fedsilo.io", True),
        ("fedsilo-view", "create", "federatedjobs.fedsilo.io", False),
        ("fedsilo-edit", "create", "federatedjobs.fedsilo.io", True),
        ("fedsilo-edit", "delete", "silos.fedsilo.io", True),
        ("fedsilo-edit", "patch", "federatedjobs.fedsilo.io/status", False),
    ],
)
def test_a_user_bound_to_a_role_may_do_what_it_says(
    cluster: ControlPlane, namespace: str, role: str, verb: str, resource: str, allowed: bool
) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(ROLES))
    cluster.kubectl("create", "rolebinding", f"{role}-alice", f"--clusterrole={role}", "--user=alice", "-n", namespace)
    group, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, group, "-n", namespace, "--as=alice"]
    if sub:
        args += [f"--subresource={sub}"]
    answer = cluster.kubectl(*args, check=False).stdout.strip()
    assert answer == ("yes" if allowed else "no")
