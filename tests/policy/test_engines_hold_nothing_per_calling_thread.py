"""Neither policy engine keeps something per thread that asks it for decisions: the hub asks from one thread per silo.

The hub decides each upload on the gRPC handler thread that received it, and those threads
live as long as the server. rego-cpp allocates with snmalloc, which keeps an allocator per
thread that allocated, with that thread's slabs, for as long as the thread lives: before the
embedded engine had a thread of its own, the hub's resident set grew with every silo
(docs/big-models.md). The OPA engine kept an HTTP session, and a connection to OPA, per thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from fedsilo.policy import EmbeddedRegoEngine, OpaServerEngine, PolicyUnavailable
from fedsilo_testing import OpaServer

from .conftest import VALID, varied

# In a fresh process: 50 threads that stay alive each make one decision, and the resident set's
# growth from before they started to when all have decided. "engine": through EmbeddedRegoEngine;
# "callers": rego-cpp called on each caller's own thread, as the engine did before.
_GROWTH = """
import json, sys, threading
from fedsilo.policy import EmbeddedRegoEngine
from fedsilo.policy._engine import UPDATE_DECISION
from regopy import Interpreter

document = json.loads(sys.argv[2])
engine = EmbeddedRegoEngine()
engine.evaluate(UPDATE_DECISION, document)
lock = threading.Lock()

def on_callers_thread():
    with lock:
        interpreter = engine._interpreter
        interpreter.set_input_term(json.dumps(document))
        interpreter.query_bundle_entrypoint(engine._compiled, UPDATE_DECISION)

def resident_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20

decide = (lambda: engine.evaluate(UPDATE_DECISION, document)) if sys.argv[1] == "engine" else on_callers_thread
decided = threading.Barrier(51)
release = threading.Event()

def caller():
    decide()
    decided.wait()
    release.wait()

before = resident_mib()
callers = [threading.Thread(target=caller) for _ in range(50)]
for thread in callers:
    thread.start()
decided.wait()
print(resident_mib() - before)
release.set()
"""


def _growth_mib(how: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _GROWTH, how, json.dumps(VALID.to_document())],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(done.stdout.strip().splitlines()[-1])


def test_decisions_from_many_threads_leave_no_allocator_on_each() -> None:
    # Measured: about 4 MiB through the engine (the 50 threads themselves), 27 MiB on the callers' threads.
    through_engine, on_callers = _growth_mib("engine"), _growth_mib("callers")
    assert through_engine < on_callers / 3, (through_engine, on_callers)


def test_concurrent_callers_each_get_their_own_decision() -> None:
    engine = EmbeddedRegoEngine()
    inputs = [varied(update={"l2_norm": 3.0 if i % 2 else 9.0}) for i in range(40)]
    decisions: list[bool | None] = [None] * len(inputs)

    def decide(i: int) -> None:
        decisions[i] = engine.decide_update(inputs[i]).allow

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Over the norm cap of 5 is denied: each caller's own input was decided, none another's.
    assert decisions == [bool(i % 2) for i in range(len(inputs))]
    engine.close()


def test_a_closed_engine_refuses_to_decide() -> None:
    engine = EmbeddedRegoEngine()
    engine.close()
    with pytest.raises(PolicyUnavailable, match="rego-cpp failed"):
        engine.decide_update(VALID)


def _connections_to(port: int) -> int:
    """This process's established TCP connections to ``port`` on loopback (its sockets in /proc/net/tcp)."""
    mine = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed since the listing
            continue
        if target.startswith("socket:["):
            mine.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port, state, inode = int(fields[2].rsplit(":", 1)[1], 16), fields[3], fields[9]
            count += remote_port == port and state == "01" and inode in mine
    return count


def test_the_opa_engine_keeps_a_session_per_call_at_once_not_per_thread(opa_server: OpaServer) -> None:
    # As the hub's handler threads: threads that stay alive, each deciding once, one after another.
    port = urlsplit(opa_server.url).port
    assert port is not None
    release = threading.Event()
    before = _connections_to(port)  # other tests' engines may hold theirs
    with OpaServerEngine(opa_server.url) as engine:

        def decide_then_wait(decided: threading.Event) -> None:
            assert engine.decide_update(VALID).allow
            decided.set()
            release.wait()

        threads = []
        try:
            for _ in range(20):
                decided = threading.Event()
                threads.append(threading.Thread(target=decide_then_wait, args=(decided,)))
                threads[-1].start()
                assert decided.wait(30)
            # Before, each thread kept a session of its own, and a connection to OPA: 20 here.
            assert _connections_to(port) - before == 1
        finally:
            release.set()
            for thread in threads:
                thread.join()
