"""What a process's resident set is made of: its memory mappings sorted into kinds, at its peak.

The benchmark harness runs a :class:`PeakSampler` in the hub's process while the rounds run;
at each new peak of the resident set it reads ``/proc/self/smaps`` and keeps the resident
kibibytes of each kind of mapping:

- ``main_heap``: glibc's main arena (``[heap]``, grown with brk);
- ``arenas``: glibc's other arenas, one or more 64 MiB reservations each (a thread that
  allocates while another holds an arena's lock gets an arena of its own, up to 8 per core);
- ``thread_stacks``: thread stacks (a mapping just above its PROT_NONE guard page);
- ``other_anonymous``: the rest of the anonymous memory: blocks too large for an arena
  (mmapped one by one), Python's object arenas, gRPC core's buffers when it maps them itself;
- ``files``: mapped files (the interpreter, libraries, extension modules).

Linux only; reads nothing but this process's own ``/proc`` files.
"""

from __future__ import annotations

import os
import re
import threading
import tracemalloc
from dataclasses import dataclass, field

_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s*(.*)$")
_ARENA_BYTES = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit: a non-main arena's heaps are this size and aligned to it
KINDS = ("main_heap", "arenas", "thread_stacks", "other_anonymous", "files")


@dataclass
class _Mapping:
    start: int
    end: int
    perms: str
    path: str
    rss_kib: int = 0


def _mappings() -> list[_Mapping]:
    mappings: list[_Mapping] = []
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            header = _HEADER.match(line)
            if header:
                start, end, perms, path = header.groups()
                mappings.append(_Mapping(int(start, 16), int(end, 16), perms, path.strip()))
            elif line.startswith("Rss:"):
                mappings[-1].rss_kib = int(line.split()[1])
    return mappings


def residency() -> dict[str, float]:
    """This process's resident set now, in MiB by kind of mapping (:data:`KINDS`), plus ``total``."""
    mappings = _mappings()
    kib = dict.fromkeys(KINDS, 0)
    for i, mapping in enumerate(mappings):
        if mapping.path == "[heap]":
            kind = "main_heap"
        elif mapping.path and not mapping.path.startswith("["):
            kind = "files"
        elif mapping.path:  # [stack] (the main thread's), [vdso], [vvar]
            kind = "thread_stacks" if mapping.path == "[stack]" else "files"
        elif mapping.start % _ARENA_BYTES == 0 and _arena_reservation(mappings, i):
            kind = "arenas"
        elif i > 0 and mappings[i - 1].end == mapping.start and mappings[i - 1].perms.startswith("---"):
            kind = "thread_stacks" if mappings[i - 1].end - mappings[i - 1].start <= 64 << 10 else "other_anonymous"
        else:
            kind = "other_anonymous"
        kib[kind] += mapping.rss_kib
    figures = {kind: kib[kind] / 1024 for kind in KINDS}
    figures["total"] = sum(kib.values()) / 1024
    return figures


def _arena_reservation(mappings: list[_Mapping], i: int) -> bool:
    """Whether the mapping at ``i`` opens a 64 MiB arena reservation (its used part, then the PROT_NONE rest)."""
    end = mappings[i].end
    j = i + 1
    while (
        j < len(mappings)
        and mappings[j].start == end
        and not mappings[j].path
        and end - mappings[i].start < _ARENA_BYTES
    ):
        end = mappings[j].end
        j += 1
    return end - mappings[i].start == _ARENA_BYTES


def threads() -> int:
    """Threads of this process now."""
    return len(os.listdir("/proc/self/task"))


@dataclass
class PeakSampler:
    """Samples this process's resident set; keeps its breakdown at the highest sample, and the most threads.

    A sample every ``interval`` seconds misses a peak shorter than that: the figures are the
    resident set's composition near its peak, not a bound. With ``heap_sites`` (and tracemalloc
    tracing), each time the Python heap passes its last snapshot by ``heap_step_mib`` a snapshot
    names the lines holding the most of it: at 100M parameters, which whole-model copies the hub
    holds at its peak.
    """

    interval: float = 0.2
    heap_sites: bool = False
    heap_step_mib: float = 64.0
    peak: dict[str, float] = field(default_factory=dict)
    most_threads: int = 0
    # "MiB at file:line", largest first, from the snapshot at the heap's highest sample.
    sites: list[str] = field(default_factory=list)
    _sites_at_mib: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="residency")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.most_threads = max(self.most_threads, threads())
            now = _rss_now_mib()
            if now > self.peak.get("total", 0.0) + 1.0:
                self.peak = residency()
            if self.heap_sites and tracemalloc.is_tracing():
                heap = tracemalloc.get_traced_memory()[0] / 2**20
                if heap > self._sites_at_mib + self.heap_step_mib:
                    self._sites_at_mib = heap
                    top = tracemalloc.take_snapshot().statistics("lineno")[:12]
                    self.sites = [f"{stat.size / 2**20:.1f} MiB at {stat.traceback[0]}" for stat in top]


def _rss_now_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
