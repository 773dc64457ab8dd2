"""The local trainer sandbox: an unprivileged uid with no capabilities, in its own network and mount namespaces.

Used by the local run to wrap each silo's trainer command. Run as root on Linux with
``unshare`` and ``setpriv`` (util-linux), every trainer gets:

- its own network namespace (no interface but a loopback that is down), created by root
  and owned by the host's user namespace, so nothing inside can ``setns()`` back out;
- its own uid and gid (one per silo, never root), all capabilities dropped from every
  set including the bounding set, and ``no_new_privs``: no raw sockets, no namespace
  changes, no set-uid escape, and another silo's trainer is another uid;
- its own mount namespace in which the run directory is an empty tmpfs holding only the
  job file (read-only) and this silo's link directory: no silo's keys are visible, and
  directories the interpreter lives under but others may not enter (``/root``) are
  replaced by a tmpfs holding only the interpreter, read-only.

Elsewhere (not root) the strongest isolation the OS allows is used: a user and network
namespace, which blocks the network but not the run directory, and the run says so.
The link itself is authenticated per silo by a token (``LINK_TOKEN_ENV``) regardless.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# The first silo's trainer uid (and gid); silo i runs as TRAINER_UID_BASE + i. Far above
# any uid a distribution hands out, so no file on the host belongs to a trainer.
TRAINER_UID_BASE = 1_700_000

# Run as root inside the new mount and network namespaces, before dropping to the trainer's uid.
# Arguments: the trainer uid, then steps of two words each until ``--``: ``hide PATH`` (an
# empty tmpfs over it), ``ro PATH`` or ``rw PATH`` (the real PATH shown again, read-only or
# writable), then the trainer command. Shown paths are taken from a stage bind of the tree
# as it was before anything was hidden.
_ENTER = r"""
set -eu
uid=$1; shift
stage=$(mktemp -d /tmp/fedsilo-sandbox.XXXXXX)
mount --make-rprivate /
mount --rbind / "$stage"
while [ "$1" != "--" ]; do
    if [ "$1" = hide ]; then
        mkdir -p "$2"
        mount -t tmpfs -o mode=0755,size=1m fedsilo-hidden "$2"
    else
        if [ -d "$stage$2" ]; then mkdir -p "$2"; else mkdir -p "$(dirname "$2")"; touch "$2"; fi
        mount --rbind "$stage$2" "$2"
        if [ "$1" = ro ]; then mount -o remount,bind,ro "$2"; fi
    fi
    shift 2
done
shift
umount -l "$stage"
rmdir "$stage"
exec setpriv --reuid="$uid" --regid="$uid" --clear-groups \
    --inh-caps=-all --ambient-caps=-all --bounding-set=-all --no-new-privs -- "$@"
"""


#: The longest path a unix socket may have: the kernel's ``sun_path`` holds 108 bytes with the closing NUL.
SOCKET_PATH_LIMIT = 107


def link_socket(run_dir: Path, silo: str) -> Path:
    """Where silo ``silo``'s sidecar listens for its trainer: a unix socket in the silo's link directory."""
    return run_dir / "links" / silo / "trainer.sock"


def check_link_sockets(run_dir: Path, silos: Iterable[str]) -> None:
    """Raise ``ValueError`` naming ``--workdir`` if a silo's link socket would be too long a path to bind.

    Otherwise the sidecar fails later, with only gRPC's "Failed to bind to address" to go on.
    """
    for silo in silos:
        path = link_socket(run_dir, silo)
        if len(os.fsencode(path)) > SOCKET_PATH_LIMIT:
            raise ValueError(
                f"--workdir {run_dir} is too deep: silo {silo}'s trainer link would listen on {path}, "
                f"{len(os.fsencode(path))} bytes, and a unix socket's path may have at most {SOCKET_PATH_LIMIT}; "
                "choose a shorter --workdir (nothing was created)"
            )


@dataclass(frozen=True)
class Isolation:
    """How trainer processes are started, and what a person should be told about it."""

    prefix: tuple[str, ...]
    applied: bool
    description: str
    # Whether the full sandbox (own uid, no capabilities, hidden run directory) is used.
    sandbox: bool = False

    def trainer_uid(self, index: int) -> int | None:
        """The uid silo number ``index``'s trainer runs as; None when trainers run as this user."""
        return TRAINER_UID_BASE + index if self.sandbox else None

    def link_directory(self, run_dir: Path, silo: str, index: int) -> Path:
        """Silo ``silo``'s link directory (its socket, nothing else): mode 0700, its trainer uid's in the sandbox."""
        directory = link_socket(run_dir, silo).parent
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        uid = self.trainer_uid(index)
        if uid is not None:
            os.chown(directory, uid, uid)
        return directory

    def trainer_command(
        self,
        command: list[str],
        *,
        index: int,
        run_dir: Path,
        link_dir: Path,
        readable: tuple[Path, ...] = (),
    ) -> list[str]:
        """``command`` wrapped in this isolation for silo number ``index``.

        In the sandbox the trainer sees of ``run_dir`` only ``link_dir`` (writable, for its
        socket) and ``readable`` (the job file, read-only); ``readable`` paths outside the run
        directory (code, data) stay visible even under directories others may not enter.
        """
        uid = self.trainer_uid(index)
        if uid is None:
            return [*self.prefix, *command]
        run, link = run_dir.resolve(), link_dir.resolve()
        interpreter = {Path(os.path.realpath(p)) for p in (sys.prefix, sys.base_prefix, Path(sys.executable).parent)}
        wanted = interpreter | {p.resolve() for p in readable}
        inside = sorted(p for p in wanted if run in p.parents)
        outside = {p for p in wanted if p not in inside}
        outside = {p for p in outside if not any(o in p.parents for o in outside)}
        closed = _closed_ancestors([*outside, run])
        closed = {c for c in closed if not any(o in c.parents for o in closed)}
        steps: list[str] = []
        for path in sorted(closed, key=lambda c: len(c.parts)):
            steps += ["hide", str(path)]
        for path in sorted(outside):
            if any(c == path or c in path.parents for c in closed):
                steps += _show(path, run)
        # Last, so no path shown above brings the run directory back: it holds every silo's keys.
        steps += ["hide", str(run)]
        for path in inside:
            steps += ["ro", str(path)]
        steps += ["rw", str(link)]
        return [*self.prefix, "sh", "-c", _ENTER, "fedsilo-sandbox", str(uid), *steps, "--", *command]


def _show(path: Path, run: Path) -> list[str]:
    """Steps that show ``path`` read-only, leaving out the run directory.

    A directory others may not enter (a 0700 folder holding a manifest and its model code)
    is shown entry by entry on an open tmpfs, so the trainer's uid can list and read it.
    """
    if not path.is_dir() or os.stat(path).st_mode & 0o005 == 0o005:
        return ["ro", str(path)]
    steps = ["hide", str(path)]
    for entry in sorted(path.iterdir()):
        if entry != run and entry not in run.parents:
            steps += ["ro", str(entry)]
    return steps


def _closed_ancestors(paths: list[Path]) -> set[Path]:
    """The shallowest directory above each of ``paths`` that others may not enter (e.g. ``/root``)."""
    closed: set[Path] = set()
    for path in paths:
        for ancestor in reversed(path.parents):
            if ancestor != Path("/") and ancestor.exists() and not os.stat(ancestor).st_mode & stat.S_IXOTH:
                closed.add(ancestor)
                break
    return closed


def detect_isolation(enabled: bool = True) -> Isolation:
    """The strongest isolation this machine allows (or none when ``enabled`` is false)."""
    if not enabled:
        return Isolation((), False, "not applied: disabled with --no-isolation")
    unshare = shutil.which("unshare")
    if unshare is None:
        return Isolation((), False, "not applied: the unshare command (util-linux) is missing")
    reason = ""
    if os.geteuid() == 0 and shutil.which("setpriv") is not None:
        sandbox: tuple[str, ...] = (unshare, "--mount", "--net")
        probe = subprocess.run([*sandbox, "true"], capture_output=True, check=False, timeout=10)
        if probe.returncode == 0:
            return Isolation(
                sandbox,
                True,
                "applied: each trainer runs as its own unprivileged uid with no capabilities and no_new_privs, "
                "in its own network namespace with no route out and a mount namespace that hides every key",
                sandbox=True,
            )
        reason = probe.stderr.decode(errors="replace").strip()
    candidates: list[tuple[str, ...]] = [(unshare, "--net")] if os.geteuid() == 0 else []
    candidates.append((unshare, "--user", "--map-root-user", "--net"))
    for prefix in candidates:
        probe = subprocess.run([*prefix, "true"], capture_output=True, check=False, timeout=10)
        if probe.returncode == 0:
            kind = "user + network namespace" if "--user" in prefix else "network namespace"
            return Isolation(
                prefix,
                True,
                f"applied: each trainer runs in its own {kind} with no route out "
                "(sandbox not applied: the run directory stays readable; it needs root and setpriv)",
            )
        reason = probe.stderr.decode(errors="replace").strip()
    return Isolation((), False, f"not applied: this OS refuses new network namespaces ({reason})")
