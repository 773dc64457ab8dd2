"""``ChildWatch`` notices a silo process that exits with an error, names it with its log's tail, and keeps no secret.

Real processes: a Python child that writes its log and exits (or is killed).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from fedsilo.runner._children import ChildDeath, ChildWatch, SiloProcesses, exit_description, log_tail

TOKEN = "link-token-never-shown"
KEY = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----"


def _process(tmp_path: Path, role: str, code: str) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"{role}.log").open("wb")
    return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)


def _silo(tmp_path: Path, sidecar: str, trainer: str) -> SiloProcesses:
    return SiloProcesses(
        "hospital-a", _process(tmp_path, "sidecar", sidecar), _process(tmp_path, "trainer", trainer), tmp_path, TOKEN
    )


SLEEP = "import time; time.sleep(600)"
CRASH = f"print('loading'); print({TOKEN!r}); print({KEY!r}); raise SystemExit('no model factory named custom')"


def _watch(silo: SiloProcesses) -> tuple[ChildWatch, threading.Event]:
    seen = threading.Event()
    watch = ChildWatch(poll_seconds=0.05)
    watch.start([silo], lambda death: seen.set())
    return watch, seen


def _end(silo: SiloProcesses) -> None:
    for _, process in silo.roles():
        process.kill()
        process.wait()


def test_a_trainer_that_exits_with_an_error_is_named_with_its_log(tmp_path: Path) -> None:
    silo = _silo(tmp_path, SLEEP, CRASH)
    watch, seen = _watch(silo)
    try:
        assert seen.wait(120)
        death = watch.death
        assert isinstance(death, ChildDeath)
        assert (death.silo, death.role, death.pid, death.code) == ("hospital-a", "trainer", silo.trainer.pid, 1)
        assert death.summary() == f"the trainer of silo hospital-a (pid {silo.trainer.pid}) died: exit code 1"
        assert death.report().startswith(death.summary() + f"; the last lines of {tmp_path / 'trainer.log'}:\n")
        assert "loading" in death.tail and "no model factory named custom" in death.tail
        assert TOKEN not in death.report() and "PRIVATE KEY" not in death.report()
        assert "[redacted]" in death.tail
    finally:
        watch.stop()
        _end(silo)


def test_a_released_silo_may_die_and_the_run_is_not_told(tmp_path: Path) -> None:
    silo = _silo(tmp_path, SLEEP, SLEEP)
    watch, seen = _watch(silo)
    watch.release("hospital-a")
    try:
        silo.sidecar.kill()
        silo.sidecar.wait()
        # The watch polls every 0.05 s: a second is twenty looks at the dead process.
        assert not seen.wait(1.0)
        assert watch.death is None
    finally:
        watch.stop()
        _end(silo)


def test_a_process_that_ends_cleanly_is_no_death(tmp_path: Path) -> None:
    silo = _silo(tmp_path, SLEEP, "print('done')")
    watch, seen = _watch(silo)
    try:
        assert silo.trainer.wait(120) == 0
        assert not seen.wait(1.0)
    finally:
        watch.stop()
        _end(silo)


def test_exit_codes_read_as_people_say_them() -> None:
    assert exit_description(2) == "exit code 2"
    assert exit_description(-9) == "killed by SIGKILL (exit code -9)"
    assert exit_description(-200) == "killed by signal 200 (exit code -200)"


def test_the_tail_is_the_last_lines_of_a_long_log(tmp_path: Path) -> None:
    log = tmp_path / "sidecar.log"
    log.write_text("".join(f"line {n}\n" for n in range(5000)))
    assert log_tail(log, lines=3) == "line 4997\nline 4998\nline 4999"
    assert log_tail(tmp_path / "missing.log").startswith(f"(its log {tmp_path / 'missing.log'} cannot be read")
    (tmp_path / "empty.log").write_bytes(b"")
    assert log_tail(tmp_path / "empty.log") == "(its log is empty)"
