"""Start and stop the server processes of the test support (etcd, kube-apiserver, OPA).

Used by :mod:`fedsilo_testing.controlplane` and :mod:`fedsilo_testing.opa_server`. A server must
never outlive the test session: it is stopped by its owner (terminate, then kill), at
interpreter exit if its owner forgot, and, on Linux, by the kernel if the Python process
dies without cleaning up (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import atexit
import ctypes
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_running: set[subprocess.Popen[bytes]] = set()


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago (the server binds it soon after)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def set_pdeathsig() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_pdeathsig


def start(args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``args`` with stdout and stderr appended to ``log``."""
    with log.open("ab") as sink:
        process = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            # Only a prctl between fork and exec, which is safe even with threads around.
            preexec_fn=_die_with_parent(),
        )
    _running.add(process)
    return process


def stop(process: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """Terminate ``process``, kill it if it is still there after ``grace`` seconds, reap it."""
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _running.discard(process)


def tail(log: Path, lines: int = 30) -> str:
    """The end of a server log, for an error message."""
    try:
        with log.open(errors="replace") as text:
            return "".join(text.readlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


@atexit.register
def _stop_all() -> None:
    for process in list(_running):
        stop(process, grace=5.0)
