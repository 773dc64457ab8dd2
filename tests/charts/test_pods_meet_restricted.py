"""Every pod the charts render meets Pod Security "restricted", field by field, in every
scenario; the API server's own PodSecurity admission agreeing is checked on a real install
(test_charts_install_on_a_real_api_server.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import SCENARIOS, Helm

#: The images' user (operator/Dockerfile: USER 65532:65532).
UID = 65532


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """What in a pod spec the "restricted" profile (and the images' user) forbids; empty if none."""
    pod = spec.get("securityContext") or {}
    found = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(f"pod {field}")
    if any("hostPath" in volume for volume in spec.get("volumes") or []):
        found.append("hostPath volume")
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        context = container.get("securityContext") or {}
        name = container["name"]
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if (context.get("capabilities") or {}).get("drop") != ["ALL"]:
            found.append(f"{name}: capabilities.drop is not [ALL]")
        if set((context.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities")
        if not (context.get("runAsNonRoot") or pod.get("runAsNonRoot")):
            found.append(f"{name}: runAsNonRoot not set")
        if (context.get("runAsUser", pod.get("runAsUser"))) != UID:
            found.append(f"{name}: not the images' user {UID}")
        seccomp = (context.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile is {seccomp}")
        if context.get("readOnlyRootFilesystem") is not True:
            found.append(f"{name}: writable root filesystem")
        if "resources" not in container or "requests" not in container["resources"]:
            found.append(f"{name}: no resource requests")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            found.append(f"{name}: hostPort")
    return found


@pytest.mark.parametrize("values", SCENARIOS)
def test_every_rendered_pod_meets_restricted(helm: Helm, values: Path) -> None:
    objects = helm.render(values.parent.parent, values)
    specs = list(objects.pod_specs())
    assert specs, "each scenario runs the operator"
    for name, spec in specs:
        assert restricted_violations(spec) == [], name


def test_a_pod_that_breaks_the_profile_is_caught() -> None:
    spec = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "securityContext": {"privileged": True}, "resources": {"requests": {}}}],
    }
    assert restricted_violations(spec) == [
        "c: allowPrivilegeEscalation is not false",
        "c: privileged",
        "c: capabilities.drop is not [ALL]",
        "c: writable root filesystem",
    ]
