"""The embedded engine keeps rego-cpp on one thread of its own, whichever threads ask it for decisions.

rego-cpp allocates with snmalloc, which keeps an allocator per thread that allocated, with that
thread's slabs, for as long as the thread lives. The hub decides each upload on the gRPC handler
thread that received it, and those threads live as long as the server, so before the engine
had a thread of its own the hub's resident set grew with every silo (docs/big-models.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from fedsilo.policy import EmbeddedRegoEngine, PolicyUnavailable

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
