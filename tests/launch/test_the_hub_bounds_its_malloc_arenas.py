"""The hub's process keeps to ``HUB_MALLOC_ARENAS`` malloc arenas however many threads allocate.

glibc gives each new thread that allocates an arena of its own (up to eight per core); each
arena keeps its own high-water mark, which is how a hub with a thread per waiting silo grew
its resident set with the silo count. The count comes from glibc's own ``malloc_stats``, in a
fresh interpreter (the arena limit is fixed for a process once it holds more than eight).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fedsilo.launch import HUB_MALLOC_ARENAS, hub_allocator_environment

THREADS = 12

# Each thread allocates from malloc (a bytes object above pymalloc's 512 bytes) and waits until
# all have, so each holds its arena; then glibc prints one "Arena N:" block per arena to stderr.
_PROGRAM = f"""
import ctypes, ctypes.util, sys, threading
from fedsilo.launch import bound_allocator_arenas
if sys.argv[1] == "bound":
    assert bound_allocator_arenas()
barrier = threading.Barrier({THREADS} + 1)
def allocate():
    kept = [bytes(range(256)) * 8 for _ in range(64)]
    barrier.wait()
    barrier.wait()
threads = [threading.Thread(target=allocate) for _ in range({THREADS})]
for thread in threads:
    thread.start()
barrier.wait()
ctypes.CDLL(ctypes.util.find_library("c")).malloc_stats()
barrier.wait()
"""


def _arenas(mode: str, env: dict[str, str] | None = None) -> int:
    done = subprocess.run([sys.executable, "-c", _PROGRAM, mode], capture_output=True, text=True, check=True, env=env)
    return sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_stats")
def test_threads_that_allocate_share_the_hubs_arenas() -> None:
    assert _arenas("default") > HUB_MALLOC_ARENAS  # as a hub was before: an arena per thread
    assert _arenas("bound") == HUB_MALLOC_ARENAS


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_stats")
def test_the_pods_environment_bounds_them_from_the_processs_start() -> None:
    assert _arenas("default", env=os.environ | hub_allocator_environment()) == HUB_MALLOC_ARENAS
