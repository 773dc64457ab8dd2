"""The silo processes of ``fedsilo run`` and the watch that ends the run when one of them dies.

``LocalRun`` starts a sidecar and a trainer per silo (``SiloProcesses``). On one machine a
process that exits with an error is a broken run (a trainer that cannot import its model,
a sidecar refused by the hub), not a silo that went away: without this watch the hub would
wait out the step's deadline, minutes, before failing or going on without it. ``ChildWatch``
polls every process twice a second and reports the first one that exits with a non-zero code
(``ChildDeath``): its silo, its role, its exit code and the tail of its log, the lines that
say why. Fault tests that kill a silo on purpose ``release`` it first: its end is then the
dropout the test asks for, and is only logged.
"""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger("fedsilo.run")

# How often the processes are polled: a death is noticed within this many seconds.
POLL_SECONDS = 0.5
# How much of a dead process's log its report carries: the last lines, from the last bytes.
TAIL_LINES = 20
TAIL_BYTES = 8192

Role = Literal["sidecar", "trainer"]

# A private key in PEM form, should a process ever print one: never repeated in a report.
_PEM_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL)
REDACTED = "[redacted]"


@dataclass
class SiloProcesses:
    """One silo's two processes, their logs, and the link token both hold (never shown)."""

    name: str
    sidecar: subprocess.Popen[bytes]
    trainer: subprocess.Popen[bytes]
    logs: Path
    link_token: str

    def roles(self) -> tuple[tuple[Role, subprocess.Popen[bytes]], ...]:
        """The processes by their role, sidecar first."""
        return (("sidecar", self.sidecar), ("trainer", self.trainer))

    def log_of(self, role: Role) -> Path:
        """The file a process writes its output to."""
        return self.logs / f"{role}.log"


def exit_description(code: int) -> str:
    """An exit code as people read it: ``exit code 1``, or ``killed by SIGKILL`` for a signal."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name} (exit code {code})"
    except ValueError:
        return f"killed by signal {-code} (exit code {code})"


def log_tail(path: Path, secrets: Sequence[str] = (), lines: int = TAIL_LINES, max_bytes: int = TAIL_BYTES) -> str:
    """The last ``lines`` lines of the log at ``path`` (from its last ``max_bytes``), with ``secrets`` and keys removed."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, 2)
            file.seek(max(0, size - max_bytes))
            data = file.read()
    except OSError as error:
        return f"(its log {path} cannot be read: {error.strerror})"
    data = _PEM_KEY.sub(REDACTED.encode(), data)
    text = data.decode("utf-8", errors="replace")
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    kept = text.splitlines()[-lines:]
    return "\n".join(kept) if kept else "(its log is empty)"


@dataclass(frozen=True)
class ChildDeath:
    """A silo process that exited with an error while the job ran."""

    silo: str
    role: Role
    pid: int
    code: int
    log: Path
    tail: str

    def summary(self) -> str:
        """One line naming the silo, the process and how it ended: what the hub and the other silos are told."""
        return f"the {self.role} of silo {self.silo} (pid {self.pid}) died: {exit_description(self.code)}"

    def report(self) -> str:
        """The summary with the tail of the process's log: what the person running the job is shown."""
        return f"{self.summary()}; the last lines of {self.log}:\n{self.tail}"


class ChildWatch:
    """Polls a run's silo processes from a daemon thread and calls ``on_death`` for the first unexpected death.

    Deaths of released silos, and any after the first, are logged only: the run is already
    ending, and its report names the first cause.
    """

    def __init__(self, poll_seconds: float = POLL_SECONDS) -> None:
        self._on_death: Callable[[ChildDeath], None] = lambda death: None
        self._poll_seconds = poll_seconds
        self._released: set[str] = set()
        self._reported: set[int] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.death: ChildDeath | None = None

    def release(self, silo: str) -> None:
        """``silo``'s processes may die from now on without ending the run (a fault test kills them on purpose)."""
        with self._lock:
            self._released.add(silo)

    def start(self, processes: Sequence[SiloProcesses], on_death: Callable[[ChildDeath], None]) -> None:
        """Watch ``processes`` until ``stop``; ``on_death`` hears of the first unexpected death."""
        self._on_death = on_death
        self._thread = threading.Thread(target=self._watch, args=(tuple(processes),), name="child-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (the job ended: processes exit now as they should) and wait for the watch to end."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self, processes: tuple[SiloProcesses, ...]) -> None:
        while not self._stopped.wait(self._poll_seconds):
            for silo in processes:
                for role, process in silo.roles():
                    code = process.poll()
                    if code is not None and code != 0 and process.pid not in self._reported:
                        self._reported.add(process.pid)
                        self._died(silo, role, process.pid, code)

    def _died(self, silo: SiloProcesses, role: Role, pid: int, code: int) -> None:
        with self._lock:
            released = silo.name in self._released
            first = not released and self.death is None and not self._stopped.is_set()
            if first:
                self.death = ChildDeath(
                    silo.name, role, pid, code, silo.log_of(role), log_tail(silo.log_of(role), (silo.link_token,))
                )
        log.warning("%s of %s exited: %s (log: %s)", role, silo.name, exit_description(code), silo.log_of(role))
        if first and self.death is not None:
            log.error("%s", self.death.report())
            self._on_death(self.death)
