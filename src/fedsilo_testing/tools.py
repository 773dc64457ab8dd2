"""Where the Go-built tools are: an override from the environment, the cache, or a fresh build.

The fixtures and the server helpers call :func:`tool_path`. Where a tool is, which override
wins and which version is pinned is decided in one place, ``scripts/build-tools`` (asked
through ``scripts/tool-path``); this module asks it, and builds a missing tool on first use.
It names the override variables only to say, in an error, how to skip a build.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parents[2]
BUILD_TOOLS = ROOT / "scripts" / "build-tools"
TOOL_PATH = ROOT / "scripts" / "tool-path"

#: The tools each fixture needs, built up front for the tests that use the fixture.
FIXTURE_TOOLS: dict[str, tuple[str, ...]] = {
    "control_plane": ("etcd", "kube-apiserver", "kubectl"),
    "kubectl_binary": ("kubectl",),
    "opa_binary": ("opa",),
    "helm_binary": ("helm",),
    "promtool_binary": ("promtool",),
}

#: The tools scripts/build-tools provides, and the variables that point to downloaded ones,
#: first match wins (KUBEBUILDER_ASSETS is a folder with etcd, kube-apiserver and kubectl).
OVERRIDES: dict[str, tuple[str, ...]] = {
    "kube-apiserver": ("KUBEBUILDER_ASSETS",),
    "etcd": ("KUBEBUILDER_ASSETS",),
    "kubectl": ("KUBECTL_BIN", "KUBEBUILDER_ASSETS"),
    "opa": ("OPA_BIN",),
    "helm": ("HELM_BIN",),
    "promtool": ("PROMTOOL_BIN",),
}

# A session may ask for several tools at once (e.g. from threads); one build is enough.
_build_lock = threading.Lock()
# The build started at collection (see build_in_background): its thread, its process while
# it runs, and its outcome for the terminal, once.
_background: threading.Thread | None = None
_background_process: subprocess.Popen[str] | None = None
_background_outcome = ""


class ToolUnavailable(RuntimeError):
    """A tool is neither given by the environment nor in the cache, and cannot be built."""


def tool_path(name: str) -> Path:
    """The path of the executable ``name``, building it with scripts/build-tools if needed.

    Order: the environment override (see :data:`OVERRIDES`), then the pinned build in the
    cache (``$FEDSILO_CACHE/tools/<name>-<version>/<name>``), then a build from the Go
    module proxy, which takes minutes the first time on a fresh machine.
    """
    return ensure_tools(name)[name]


def ensure_tools(*names: str) -> dict[str, Path]:
    """The paths of several tools; the missing ones are built together, in one ``go build``."""
    for name in names:
        _check_name(name)
    with _build_lock:
        if _background is not None:
            _background.join()
        missing = [name for name in names if _locate(name) is None]
        if missing:
            _build(missing)
    paths: dict[str, Path] = {}
    for name in names:
        path = _locate(name)
        if path is None:
            raise ToolUnavailable(
                f"scripts/build-tools finished but {name} is still not in the cache; "
                f"set {_variables(name)} to a downloaded binary to skip the build"
            )
        paths[name] = path
    return paths


def build_in_background(*names: str) -> None:
    """Start building those of ``names`` that are missing, and return.

    The tests that need none of them run meanwhile; :func:`ensure_tools` waits for this build
    before it looks. A cold build takes tens of minutes, most of a fresh machine's test run; its output goes to
    a log file (named on the terminal), not between the tests' results. If it fails, the
    first :func:`ensure_tools` builds again in the foreground and reports the error there.
    """
    global _background
    missing = [name for name in names if _locate(name) is None]
    if not missing:
        return
    # One log per session: two sessions at once (two checkouts) wait for one build between them.
    fd, name = tempfile.mkstemp(prefix="fedsilo-tool-build-", suffix=".log")
    os.close(fd)
    log = Path(name)
    _background = threading.Thread(target=_build_into_log, args=(missing, log), name="fedsilo tool build", daemon=True)
    _background.start()


def background_build_running() -> bool:
    """Whether the build started at collection is still running."""
    return _background is not None and _background.is_alive()


def wait_for_background_build() -> str:
    """Wait for the build started at collection; its outcome the first time, then ""."""
    global _background_outcome
    if _background is not None:
        _background.join()
    outcome, _background_outcome = _background_outcome, ""
    return outcome


def stop_background_build() -> None:
    """Stop a build nobody waited for (the session ended first); scripts/build-tools stops its go build."""
    if _background_process is not None and _background_process.poll() is None:
        _background_process.terminate()
        _background_process.wait()


def pinned_version(name: str) -> str:
    """The version of ``name`` pinned in tools/go.mod (what a build here produces)."""
    _check_name(name)
    listing = subprocess.run(["bash", str(BUILD_TOOLS), "--list"], capture_output=True, text=True, check=True)
    return dict(line.split() for line in listing.stdout.splitlines())[name]


def is_overridden(name: str) -> bool:
    """Whether the environment points ``name`` to a binary of its own (then any version)."""
    _check_name(name)
    return any(os.environ.get(variable) for variable in OVERRIDES[name])


def _check_name(name: str) -> None:
    if name not in OVERRIDES:
        raise ValueError(f"unknown tool {name!r}; scripts/build-tools provides {', '.join(OVERRIDES)}")


def _variables(name: str) -> str:
    return " or ".join(OVERRIDES[name])


def _locate(name: str) -> Path | None:
    located = subprocess.run(["bash", str(TOOL_PATH), name], capture_output=True, text=True, check=False)
    if located.returncode == 0:
        return Path(located.stdout.strip())
    if located.returncode == 1:  # not built yet
        return None
    raise ToolUnavailable(f"{located.stderr.strip()} (check {_variables(name)})")


def _build(names: list[str]) -> None:
    """Build ``names`` in the foreground, the progress straight to the terminal.

    The terminal, past pytest's capture: a first build takes minutes and should not look
    like a hang.
    """
    print(
        f"\n[fedsilo] building {' '.join(names)} with scripts/build-tools (minutes on a fresh machine)",
        file=sys.__stderr__,
    )
    code, tail = _run_build(names, sys.__stderr__)
    if code != 0:
        raise ToolUnavailable(
            f"could not build {' '.join(names)}: scripts/build-tools exited with {code}. "
            "Install Go (tools/go.mod says which version) or point "
            f"{' / '.join(_variables(name) for name in names)} at downloaded binaries.\n{tail}"
        )


def _build_into_log(names: list[str], log: Path) -> None:
    """Build ``names`` with the progress in ``log``; the outcome is kept for the first test that needs a tool.

    Printed from here, it would land in the captured output of whichever test is running.
    """
    global _background_outcome
    print(
        f"\n[fedsilo] building {' '.join(names)} with scripts/build-tools in the background (log: {log})",
        file=sys.__stderr__,
    )
    started = time.monotonic()
    with open(log, "w") as output:
        code, _ = _run_build(names, output, background=True)
    # "ready", not "built": another session's build may have made them while this one waited.
    outcome = "ready" if code == 0 else f"failed (exit {code}; built again on first use)"
    _background_outcome = f"{' '.join(names)} {outcome} after {time.monotonic() - started:.0f}s (log: {log})"


def _run_build(names: list[str], output: TextIO | None, *, background: bool = False) -> tuple[int, str]:
    """Run scripts/build-tools for ``names``, its progress copied to ``output``; its exit code and last lines.

    ``background``: the process is the one :func:`stop_background_build` stops.
    """
    global _background_process
    tail: collections.deque[str] = collections.deque(maxlen=40)
    with subprocess.Popen(
        ["bash", str(BUILD_TOOLS), *names], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as build:
        if background:
            _background_process = build
        assert build.stderr is not None
        for line in build.stderr:
            tail.append(line)
            print(line, end="", file=output, flush=True)
    if background:
        _background_process = None
    return build.returncode, "".join(tail)
