"""SIGTERM ends a fedsilo process even while other threads are still busy.

A gRPC server's handler threads serving long polls are not daemons: Python joins them at
exit, and a deleted aggregator pod waited for them until its grace period ran out. Here a
child process stands for it: the one handler installed, a non-daemon thread that would
outlive the test, and the command line's ending (``exit_if_terminated`` once the command has
returned).
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from fedsilo.launch import exit_if_terminated

#: Generous: the test fails only if the child is still alive then (it would be, for an hour).
EXIT_TIMEOUT_S = 60

_CHILD = """
import threading, time
from fedsilo.launch import Terminated, exit_if_terminated, raise_on_sigterm
raise_on_sigterm()
threading.Thread(target=time.sleep, args=(3600,)).start()  # a handler thread in a long poll
code = 0
try:
    print("ready", flush=True)
    time.sleep(3600)
except Terminated:
    code = 1
finally:
    print("cleaned up", flush=True)
raise SystemExit(exit_if_terminated(code))
"""


def test_sigterm_ends_the_process_after_its_clean_up_without_waiting_for_other_threads() -> None:
    child = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGTERM)
        assert child.wait(EXIT_TIMEOUT_S) == 1
        assert child.stdout.read().strip() == "cleaned up"
    except subprocess.TimeoutExpired:
        pytest.fail(f"SIGTERM did not end the process within {EXIT_TIMEOUT_S}s")
    finally:
        child.kill()
        child.wait()


def test_without_sigterm_the_command_line_keeps_the_exit_code_and_the_process() -> None:
    assert exit_if_terminated(3) == 3
