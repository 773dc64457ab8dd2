"""The hub of ``fedsilo run`` as a supervised child process that a SIGKILL does not end the job with.

``LocalRun`` runs the aggregator (coordinator, mTLS gRPC server, policy gate, ledgers) in a
process of its own (:func:`serve_hub`, started with multiprocessing's *spawn*: a fresh
interpreter, never a fork of a process with gRPC threads) and supervises it
(:class:`SupervisedHub`). When that process dies before the job ends (SIGKILL at key
agreement, upload, unmasking, the registry write...), the runner starts it again from the
newest checkpoint on the SAME port with the SAME CA and server certificate (kept in the run
directory by :func:`run_credentials`), so the silos' sidecars, which outlive it, redial and
go on, as they do when a cluster's aggregator pod is deleted. Each restart is recorded: in
the audit log (the restarted hub's ``resume`` record names the cause), in the run report
(:class:`HubRestart`) and on the progress display (:class:`RestartObserver`). Restarts are
bounded (``RunOptions.max_hub_restarts``): a hub that keeps dying fails the job with a
message saying so, instead of looping.

A restarted hub serves its Prometheus ``/metrics`` on the port the first one bound (kept in
``run.json`` beside the hub's port), so a scraper pointed at the run does not lose it. The
hub child's log lines go to the runner over the events pipe and are logged there under their
own logger names, at the runner's level: ``fedsilo run -v`` shows the hub's rounds as an
aggregator pod's log does (the hub logs no key, token or record).

The runner and its hub child talk over two multiprocessing pipes of their own (no socket,
nothing another user can reach): the child sends its ports, its log lines, the observer's
events and its outcome; the runner sends ``abort`` (a silo process died) and ``stop`` (the silos have
left; close the server). Both ends are this package's code in processes of the same user,
so the pipes are no trust boundary. The child dies with the runner (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from fedsilo.aggregator import Checkpoints, JobFailed, LedgerBook, RoundObserver, RoundSummary, start_server
from fedsilo.api import Manifest, Silo
from fedsilo.identity import CertificateAuthority, TlsCredentials, VerifyKey, write_private_file
from fedsilo.launch import bound_allocator_arenas
from fedsilo.policy import EmbeddedRegoEngine
from fedsilo.privacy.ledger import run_name
from fedsilo.protocol import PARENT_PID_ENV, PolicyVerdict, follow_parent
from fedsilo.registry import LocalRegistry
from fedsilo.statistics import StatisticsError

from ._children import exit_description
from ._hub import aggregator_signing_key, build_hub
from ._hub_statistics import statistics_before_training
from ._recovery import RecoveryError, latest_checkpoint, resume_hub
from ._report import HubRestart
from ._standing import manifest_standing

log = logging.getLogger("fedsilo.run")

#: Where the run keeps its CA and the hub's serving certificate (keys 0600): a restarted hub
#: must present a certificate the live sidecars trust, and a resumed run's silos keep theirs.
CA_DIR = "ca"
_CA_KEY, _CA_CERT = "ca-key.pem", "ca.pem"
_HUB_KEY, _HUB_CERT = "hub-key.pem", "hub.pem"
#: How long a hub child may take to listen (it imports PyTorch and builds round 0's model).
START_SECONDS = 600.0
#: How often the supervisor looks at its child when no event comes.
POLL_SECONDS = 0.5


def free_port() -> int:
    """A loopback port free now, for the hub to listen on: its silos start meanwhile and dial it until it does.

    Another process could take it before the hub binds it; the hub then fails to listen and
    the run stops saying so (``HubRefused``), as with any port in use.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_credentials(workdir: Path) -> tuple[CertificateAuthority, TlsCredentials]:
    """The run's CA and the hub's serving credentials, from ``workdir/ca`` or created there (keys 0600).

    Raises:
        ValueError: the folder holds files that do not form a CA and a certificate it issued
            (the message names the folder; remove it to start the run's PKI afresh).
    """
    folder = workdir / CA_DIR
    try:
        if (folder / _CA_KEY).is_file():
            ca = CertificateAuthority.load((folder / _CA_KEY).read_bytes(), (folder / _CA_CERT).read_bytes())
            server = TlsCredentials(
                private_key_pem=(folder / _HUB_KEY).read_bytes(),
                certificate_pem=(folder / _HUB_CERT).read_bytes(),
                ca_certificate_pem=ca.certificate_pem,
            )
            return ca, server
    except (OSError, ValueError) as error:
        raise ValueError(f"{folder} does not hold this run's CA and hub certificate ({error})") from None
    ca = CertificateAuthority.create()
    server = ca.issue("aggregator", server=True, dns_names=("localhost",), ip_addresses=("127.0.0.1",))
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private_file(folder / _CA_KEY, ca.private_key_pem())
    (folder / _CA_CERT).write_bytes(ca.certificate_pem)
    write_private_file(folder / _HUB_KEY, server.private_key_pem)
    (folder / _HUB_CERT).write_bytes(server.certificate_pem)
    return ca, server


class HubSetup(Protocol):
    """Called in every hub child before its hub is built, with the attempt (0 first); its extra observer.

    Fault tests and the resume benchmark install their kill hooks this way
    (``fedsilo_testing.crash.HubKills``); it must be picklable (a module-level object).
    """

    def __call__(self, attempt: int) -> RoundObserver | None:
        """Prepare this child; an observer to tell about its rounds too, or None."""
        ...


@runtime_checkable
class RestartObserver(Protocol):
    """A round observer that also shows hub restarts (the command's progress display)."""

    def hub_restarted(self, restart: HubRestart) -> None:
        """The hub died and listens again."""
        ...


@dataclass(frozen=True)
class HubLaunch:
    """Everything a hub child builds its hub from; handed to it by the spawn pipe."""

    manifest: Manifest
    silos: tuple[Silo, ...]
    manifest_path: Path
    workdir: Path
    registry: Path
    ledgers: Path
    hub_ledger: Path
    run_id: str
    excluded: tuple[str, ...]
    server_tls: TlsCredentials
    metrics_port: int | None
    parent_pid: int
    listen: str = "localhost:0"
    #: None: the run's first hub; else resume from the newest checkpoint, recorded with this reason.
    resume_reason: str | None = None
    attempt: int = 0
    setup: HubSetup | None = None
    #: The runner's logging level: the child's records at or above it are sent to the runner.
    log_level: int = logging.WARNING


@dataclass(frozen=True)
class HubOutcome:
    """How the job ended, as the hub told: the report is built from it."""

    succeeded: bool
    failure: str
    summaries: tuple[RoundSummary, ...]


class _LogToRunner(logging.Handler):
    """The hub child's one log handler: each record, formatted here, goes to the runner as ``("log", ...)``."""

    def __init__(self, events: Connection, lock: threading.Lock) -> None:
        super().__init__()
        self._events, self._lock = events, lock

    def emit(self, record: logging.LogRecord) -> None:
        """Send the record's logger name, level and text (its traceback included); never raise."""
        try:
            text = record.getMessage()
            if record.exc_info:
                text = f"{text}\n{logging.Formatter().formatException(record.exc_info)}"
            with self._lock:
                self._events.send(("log", record.name, record.levelno, text))
        except Exception:  # a runner gone, an unformattable record: logging must not end the hub
            self.handleError(record)


def _relay_log(message: tuple[Any, ...]) -> None:
    """Log a hub child's record in the runner, under the child's logger name and level."""
    _, name, level, text = message
    logging.getLogger(str(name)).log(int(level), "%s", text)


def _send(events: Connection, lock: threading.Lock, message: tuple[Any, ...]) -> None:
    """Send ``message`` to the runner; the lock keeps the log handler's sends from interleaving."""
    with lock:
        events.send(message)


class _Forward:
    """The child's observer: sends every event to the runner, then tells the setup's observer."""

    def __init__(self, events: Connection, lock: threading.Lock, extra: RoundObserver | None) -> None:
        self._events, self._lock, self._extra = events, lock, extra

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            self._events.send(message)

    def round_started(self, round_number: int, participants: tuple[str, ...]) -> None:
        """Forward."""
        self._send(("round_started", round_number, participants))
        if self._extra is not None:
            self._extra.round_started(round_number, participants)

    def update_decided(self, round_number: int, silo: str, verdict: PolicyVerdict) -> None:
        """Forward."""
        self._send(("update_decided", round_number, silo, verdict))
        if self._extra is not None:
            self._extra.update_decided(round_number, silo, verdict)

    def round_finished(self, summary: RoundSummary) -> None:
        """Forward."""
        self._send(("round_finished", summary))
        if self._extra is not None:
            self._extra.round_finished(summary)


def serve_hub(launch: HubLaunch, events: Connection, control: Connection) -> None:
    """The hub child's whole life: build the hub (resumed if asked), serve the job, report its outcome.

    A job with federated preprocessing serves its statistics phase first (sending
    ``("statistics", address, longest_seconds)`` once it listens). Then sends
    ``("listening", port, metrics_port)``, then the observer's events, then
    ``("done", succeeded, failure, summaries)``; or ``("refused", kind, message)`` when the
    hub cannot be built (nothing listens). After ``done`` it keeps serving (silos learn that
    no round follows) until the runner sends ``stop``. A statistics-only job sends ``done``
    right after its phase, without listening for training, and waits for ``stop`` the same way.
    """
    # First, before any thread: spawn gives the child no environment of its own to set it in.
    bound_allocator_arenas()
    os.environ[PARENT_PID_ENV] = str(launch.parent_pid)
    follow_parent()
    lock = threading.Lock()
    # A spawned interpreter has no logging set up: its records go to the runner's handlers instead.
    root = logging.getLogger()
    root.handlers[:] = [_LogToRunner(events, lock)]
    root.setLevel(launch.log_level)
    extra = launch.setup(launch.attempt) if launch.setup is not None else None
    manifest, spec = launch.manifest, launch.manifest.job.spec
    job = manifest.job.metadata.name
    try:
        # A job with federated preprocessing: its phase first, on the port training takes next.
        preprocessing = statistics_before_training(
            manifest,
            launch.silos,
            launch.workdir,
            launch.registry,
            launch.run_id,
            launch.listen,
            launch.server_tls,
            ledgers=launch.ledgers,
            fresh=launch.attempt == 0,
            serving=lambda seconds: _send(events, lock, ("statistics", launch.listen, seconds)),
        )
    except StatisticsError as error:
        _send(events, lock, ("refused", "statistics", str(error)))
        return
    if spec.statistics_only:
        # The phase was the whole job: no hub is built, no round opens, and the sidecars end with the phase.
        _send(events, lock, ("done", True, "", ()))
        _await_stop(control)
        return
    ledger_key = aggregator_signing_key(launch.ledgers) if spec.charges_silos else None
    checkpoints = Checkpoints(launch.workdir, ledger_run=run_name(job, launch.run_id), excluded=launch.excluded)
    try:
        checkpoint = latest_checkpoint(checkpoints) if launch.resume_reason is not None else None
    except RecoveryError as error:
        events.send(("refused", "recovery", str(error)))
        return
    # The round the dead hub was in: its releases may be charged already, and are recognised.
    resumed_round = (checkpoint.round if checkpoint else 0) + 1 if launch.resume_reason is not None else None
    privacy = LedgerBook.for_job(
        manifest.job, launch.hub_ledger, launch.run_id, ledger_key, resumed_round=resumed_round
    )
    keys = {s.metadata.name: VerifyKey.from_base64(str(s.spec.identity.public_key)) for s in launch.silos}
    try:
        hub = build_hub(
            manifest.job,
            launch.silos,
            state_dir=launch.workdir,
            engine=EmbeddedRegoEngine(),
            registry=LocalRegistry(launch.registry),
            observer=_Forward(events, lock, extra),
            privacy=privacy,
            preprocessing=preprocessing,
            # The manifest the user ran: editing a Silo's spec.suspended in it between rounds
            # suspends or readmits it from the next round on (keys are this run's own).
            standing=manifest_standing(launch.manifest_path, job, keys),
            checkpoints=checkpoints,
        )
    except ValueError as error:
        events.send(("refused", "setup", str(error)))
        return
    try:
        if launch.resume_reason is not None:
            try:
                resume_hub(hub, checkpoint, launch.resume_reason)
            except RecoveryError as error:
                events.send(("refused", "recovery", str(error)))
                return
        server, port = start_server(hub.coordinator, launch.listen, launch.server_tls)
        try:
            _serve(hub.coordinator, port, launch.metrics_port, events, control, lock)
        finally:
            server.stop(grace=2).wait()
    finally:
        hub.close()
        if privacy is not None:
            privacy.close()


def _await_stop(control: Connection) -> None:
    """Wait for the runner's ``stop`` (or its end): the silos have left a job that is over."""
    while True:
        try:
            message = control.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return


def _serve(
    coordinator: Any, port: int, metrics_port: int | None, events: Connection, control: Connection, lock: threading.Lock
) -> None:
    metrics = None
    if metrics_port is not None:
        # Imported here: only a run that asks for /metrics serves it, as the aggregator pod does.
        from prometheus_client import start_http_server

        metrics, _ = start_http_server(metrics_port, addr="127.0.0.1")
    stopped = threading.Event()

    def listen_to_runner() -> None:
        while True:
            try:
                message = control.recv()
            except (EOFError, OSError):
                message = ("stop",)
            if message[0] == "abort":
                coordinator.abort(str(message[1]))
            else:
                stopped.set()
                return

    threading.Thread(target=listen_to_runner, name="runner-control", daemon=True).start()
    with lock:
        events.send(("listening", port, metrics.server_port if metrics is not None else None))
    try:
        try:
            coordinator.run()
            outcome = ("done", True, "", tuple(coordinator.summaries))
        except JobFailed as error:
            outcome = ("done", False, str(error), tuple(coordinator.summaries))
        with lock:
            events.send(outcome)
        stopped.wait()
    finally:
        if metrics is not None:
            metrics.shutdown()


class HubRefused(ValueError):
    """The hub child could not build or resume its hub; nothing listens. The message says why."""


#: What ``listening`` raises for each kind of refusal a hub child sends (else ``HubRefused``).
_REFUSALS: dict[str, type[ValueError]] = {"recovery": RecoveryError, "statistics": StatisticsError}


class SupervisedHub:
    """Starts the hub child, forwards its events, restarts it after a death, and tells how the job ended."""

    def __init__(
        self,
        launch: HubLaunch,
        observer: RoundObserver | None,
        max_restarts: int,
        on_ports: Callable[[int, int | None], None],
    ) -> None:
        self._launch = launch
        self._observer = observer
        self._max_restarts = max_restarts
        #: Told the hub's port and metrics port (None: no /metrics) each time a hub listens.
        self._on_ports = on_ports
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._events: Connection | None = None
        self._control: Connection | None = None
        self._aborted: str | None = None
        self.port: int | None = None
        self.metrics_port: int | None = None
        self.restarts: list[HubRestart] = []
        self._started_restarts = 0
        #: The outcome of a job that ended before training listened (a statistics-only job).
        self._ended: HubOutcome | None = None

    def start(self) -> None:
        """Start the first hub child, without waiting for it: the silos start meanwhile and dial until it listens."""
        self._spawn(self._launch)

    def _spawn(self, launch: HubLaunch) -> None:
        events_here, events_there = self._context.Pipe(duplex=False)
        control_there, control_here = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=serve_hub, args=(launch, events_there, control_there), name=f"hub-{launch.attempt}", daemon=True
        )
        process.start()
        events_there.close()
        control_there.close()
        with self._lock:
            self._process, self._events, self._control = process, events_here, control_here

    def listening(self) -> int:
        """Wait for the hub child to listen; its port.

        Raises:
            HubRefused: the hub could not be built or did not listen (the message says why).
            RecoveryError: a restarted hub found no checkpoint it can resume from.
            StatisticsError: the job's statistics phase failed (the message names the silos left out and why).
        """
        process, events = self._process, self._events
        assert process is not None and events is not None
        deadline = time.monotonic() + START_SECONDS
        in_statistics = False
        while time.monotonic() < deadline:
            if events.poll(POLL_SECONDS):
                try:
                    message = events.recv()
                except EOFError:
                    break
                if message[0] == "log":
                    _relay_log(message)
                    continue
                if message[0] == "statistics":
                    # The statistics phase serves first: training listens once it ends, or fails.
                    in_statistics, self.port = True, int(str(message[1]).rsplit(":", 1)[1])
                    deadline = max(deadline, time.monotonic() + float(message[2]) + START_SECONDS)
                    continue
                if message[0] == "listening":
                    self.port, self.metrics_port = int(message[1]), message[2]
                    self._on_ports(self.port, self.metrics_port)
                    return self.port
                if message[0] == "done" and in_statistics and self.port is not None:
                    # A statistics-only job ended with its phase: training never listens, ``wait`` returns this.
                    self._ended = HubOutcome(bool(message[1]), str(message[2]), tuple(message[3]))
                    return self.port
                if message[0] == "refused":
                    process.join()
                    raise _REFUSALS.get(message[1], HubRefused)(str(message[2]))
            elif not process.is_alive():
                break
        process.join(POLL_SECONDS)
        if in_statistics and process.exitcode is not None and self._aborted is None:
            # It died serving the statistics phase, whose live silos wait for it: restart it as in a round.
            cause = f"the aggregator process (pid {process.pid}) died: {exit_description(process.exitcode)}"
            if self._started_restarts >= self._max_restarts:
                raise HubRefused(self._restarts_spent(cause))
            self._restart(cause)
            assert self.port is not None
            return self.port
        self.stop()
        ended = exit_description(process.exitcode) if process.exitcode is not None else "it hung"
        raise HubRefused(f"the aggregator process did not start listening ({ended}); see the run's log for why")

    def abort(self, reason: str) -> None:
        """End the job as failed with ``reason`` (a silo process died); the hub tells the silos."""
        with self._lock:
            self._aborted = reason
            if self._control is not None:
                try:
                    self._control.send(("abort", reason))
                except OSError:
                    log.info("the hub is down; the job ends once the supervisor notices")

    def wait(self) -> HubOutcome:
        """Forward the hub's events until the job ends, restarting a dead hub; how the job ended."""
        if self._ended is not None:
            return self._ended
        while True:
            process, events = self._process, self._events
            assert process is not None and events is not None
            outcome = self._forward(process, events)
            if outcome is not None:
                return outcome
            code = process.exitcode if process.exitcode is not None else 0
            cause = f"the aggregator process (pid {process.pid}) died: {exit_description(code)}"
            if self._aborted is not None:
                return HubOutcome(False, self._aborted, ())
            if self._started_restarts >= self._max_restarts:
                return HubOutcome(False, self._restarts_spent(cause), ())
            self._restart(cause)

    def _restarts_spent(self, cause: str) -> str:
        """Why the job stops at a death when no restart is left."""
        return (
            f"{cause}, after {self._started_restarts} restarts (at most {self._max_restarts}, "
            "--max-hub-restarts); the job stops here. Its checkpoints are kept: fix the cause "
            f"and go on with 'fedsilo run --resume {self._launch.workdir}'"
        )

    def _forward(self, process: multiprocessing.process.BaseProcess, events: Connection) -> HubOutcome | None:
        """Hand the child's events to the observer; its outcome, or None when it died without one."""
        while True:
            if events.poll(POLL_SECONDS):
                try:
                    message = events.recv()
                except EOFError:
                    process.join()
                    return None
                kind = message[0]
                if kind == "log":
                    _relay_log(message)
                    continue
                if kind == "done":
                    return HubOutcome(bool(message[1]), str(message[2]), tuple(message[3]))
                if self._observer is not None:
                    getattr(self._observer, kind)(*message[1:])
            elif not process.is_alive():
                process.join()
                return None

    def _restart(self, cause: str) -> None:
        """Start the next hub child after a death, wait for it to listen, and record the restart."""
        died = time.monotonic()
        # Counted now: a child that dies in the statistics phase is restarted from within
        # ``listening`` below, before this restart is recorded, and is the next one.
        self._started_restarts += 1
        number = self._started_restarts
        died_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        log.warning(
            "%s; restarting it from its newest checkpoint (restart %d of at most %d)", cause, number, self._max_restarts
        )
        reason = (
            f"{cause}; the runner restarted it on port {self.port} (restart {number} of at most {self._max_restarts})"
        )
        # The same ports: the sidecars redial the hub's, a scraper keeps reading the metrics one
        # (not yet bound if the hub died in the statistics phase: the port the run asked for).
        launch = dataclasses.replace(
            self._launch,
            listen=f"localhost:{self.port}",
            metrics_port=self.metrics_port if self.metrics_port is not None else self._launch.metrics_port,
            resume_reason=reason,
            attempt=number,
        )
        # Read before it starts: the newest checkpoint is the one it resumes from (none if the hub
        # died in the statistics phase; it writes round 0's once it has served it again).
        rounds = Checkpoints(
            launch.workdir,
            ledger_run=run_name(launch.manifest.job.metadata.name, launch.run_id),
            excluded=launch.excluded,
        ).rounds()
        self._spawn(launch)
        self.listening()
        restart = HubRestart(
            restart=number,
            cause=cause,
            died_at=died_at,
            resumed_after=rounds[-1] if rounds else None,
            seconds_down=round(time.monotonic() - died, 3),
            metrics_port=self.metrics_port,
        )
        self.restarts.append(restart)
        self.restarts.sort(key=lambda r: r.restart)
        if isinstance(self._observer, RestartObserver):
            self._observer.hub_restarted(restart)

    def serving(self) -> bool:
        """Whether the hub process is still up (after the job: telling the silos no round follows)."""
        return self._process is not None and self._process.is_alive()

    def stop(self) -> None:
        """Tell the hub to close its server (the silos have left) and wait for it; kill it if it hangs."""
        with self._lock:
            process, control = self._process, self._control
            self._control = None
        if control is not None:
            with contextlib.suppress(OSError):
                control.send(("stop",))
            control.close()
        if process is not None:
            process.join(20)
            if process.is_alive():
                process.kill()
                process.join()
