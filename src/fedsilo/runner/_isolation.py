"""Network isolation for the trainer: its own network namespace, with no route anywhere.

The namespace has no interface but a loopback that is down.

Used by the local run to wrap the trainer command. Linux lets root, or any user where
unprivileged user namespaces are enabled, create one with ``unshare``; elsewhere the run
goes on without isolation and says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Isolation:
    """How trainer processes are started, and what a person should be told about it."""

    prefix: tuple[str, ...]
    applied: bool
    description: str


def detect_isolation(enabled: bool = True) -> Isolation:
    """The strongest isolation this machine allows (or none when ``enabled`` is false)."""
    if not enabled:
        return Isolation((), False, "not applied: disabled with --no-isolation")
    unshare = shutil.which("unshare")
    if unshare is None:
        return Isolation((), False, "not applied: the unshare command (util-linux) is missing")
    candidates: list[tuple[str, ...]] = [(unshare, "--net")] if os.geteuid() == 0 else []
    candidates.append((unshare, "--user", "--map-root-user", "--net"))
    for prefix in candidates:
        probe = subprocess.run([*prefix, "true"], capture_output=True, check=False, timeout=10)
        if probe.returncode == 0:
            kind = "user + network namespace" if "--user" in prefix else "network namespace"
            return Isolation(prefix, True, f"applied: each trainer runs in its own {kind} with no route out")
        reason = probe.stderr.decode(errors="replace").strip()
    return Isolation((), False, f"not applied: this OS refuses new network namespaces ({reason})")
