"""A trainer started with the run's isolation cannot open a TCP connection, even to loopback."""

from __future__ import annotations

import socket
import subprocess
import sys

from fedsilo.runner import detect_isolation

PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError as error:
    print("blocked", error.errno)
else:
    print("connected")
"""


def _listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def test_isolation_is_available_on_this_machine() -> None:
    isolation = detect_isolation()
    assert isolation.applied, isolation.description


def test_an_isolated_process_cannot_reach_a_listening_loopback_port() -> None:
    isolation = detect_isolation()
    with _listener() as server:
        port = str(server.getsockname()[1])
        control = subprocess.run([sys.executable, "-c", PROBE, port], capture_output=True, text=True, check=True)
        assert control.stdout.strip() == "connected"
        isolated = subprocess.run(
            [*isolation.prefix, sys.executable, "-c", PROBE, port], capture_output=True, text=True, check=True
        )
        assert isolated.stdout.startswith("blocked"), isolated.stdout + isolated.stderr


def test_isolation_can_be_turned_off_and_says_so() -> None:
    isolation = detect_isolation(enabled=False)
    assert not isolation.applied and isolation.prefix == ()
    assert "disabled" in isolation.description
