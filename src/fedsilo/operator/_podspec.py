"""The pieces every pod the operator creates shares: the Pod Security "restricted" profile.

Every container runs as UID 65532 (the images' non-root user) with a read-only root
filesystem, no privilege escalation, no capabilities and the runtime's default seccomp
profile; writable space is an in-memory ``/tmp``. ``tests/operator`` creates each pod in a
namespace enforcing "restricted" to prove the API server admits it.
"""

from __future__ import annotations

from typing import Any

from fedsilo.kube import Object

NON_ROOT_UID = 65532
TMP_VOLUME = "tmp"
#: The policy sidecar of every aggregator: small and fixed (it evaluates one bundle, no job scales it).
OPA_RESOURCES: Object = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}


def pod_security_context() -> Object:
    """Pod-level settings of the restricted profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "runAsGroup": NON_ROOT_UID,
        "fsGroup": NON_ROOT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Object:
    """Container-level settings of the restricted profile."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def tmp_volume() -> Object:
    """A small in-memory ``/tmp``: the root filesystem is read-only."""
    return {"name": TMP_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}


def tmp_mount() -> Object:
    """Where :func:`tmp_volume` is mounted."""
    return {"name": TMP_VOLUME, "mountPath": "/tmp"}  # noqa: S108 - a private emptyDir, not a shared /tmp


def container(name: str, image: str, pull_policy: str, args: list[str], **extra: Any) -> Object:
    """A restricted container running ``args`` (the image's entry point is ``fedsilo`` or ``opa``)."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": pull_policy,
        "args": args,
        "securityContext": container_security_context(),
        **extra,
    }
