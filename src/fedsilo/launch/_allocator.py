"""How many malloc arenas the hub's process may use: one number for the aggregator pod and the local run's hub.

glibc's malloc gives a thread that finds the arenas it tried locked an arena of its own, up to
eight per core, and never returns memory freed inside an arena that later blocks still pin. The
hub runs one gRPC handler thread per call in progress, and every silo has one waiting in each
key-agreement step, so on a busy hub up to sixteen arenas (two cores) each keep their own
high-water mark of gRPC's buffers: at 50 silos and 1M parameters, 240 MiB of arenas against 70
MiB at 10 silos (docs/big-models.md). Two arenas keep that flat at the cost of some lock waits
between handler threads, which spend their time in gRPC and numpy rather than in malloc.

The operator sets :func:`hub_allocator_environment` on the aggregator container, so glibc reads
it at the process's first allocation; the local run's hub is a child spawned by
multiprocessing, which takes no environment of its own, so it calls
:func:`bound_allocator_arenas` first thing, before it starts a thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: Arenas the hub's allocator may use.
HUB_MALLOC_ARENAS = 2
# mallopt's parameter number for the arena limit (glibc's malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8


def hub_allocator_environment() -> dict[str, str]:
    """The environment that bounds glibc's arenas from a process's start (the aggregator pod's)."""
    return {"MALLOC_ARENA_MAX": str(HUB_MALLOC_ARENAS)}


def bound_allocator_arenas() -> bool:
    """Bound this process's malloc arenas to :data:`HUB_MALLOC_ARENAS` from now on; False where that is not possible.

    Takes effect only while the process has made few arenas (glibc fixes its limit once it holds
    more than eight), so call it before starting threads. A C library other than glibc (musl,
    macOS) has no such call; the process then runs with its allocator's defaults.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, HUB_MALLOC_ARENAS))
