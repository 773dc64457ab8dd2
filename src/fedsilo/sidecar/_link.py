"""The sidecar's side of the trainer link: a gRPC service the trainer (and only it) calls.

The sidecar posts one task at a time (``offer``) and waits for its result
(``await_result``); the trainer pulls the task with ``NextTask`` and answers with
``Complete``. Locally this listens on a Unix socket in a directory only the silo's
trainer uid may enter, so a trainer in its own network namespace can still reach it.

The link is authenticated per silo: given a token (``LINK_TOKEN_ENV``, which a local run
sets for this silo's sidecar and trainer only), every call must carry it in its
``LINK_TOKEN_METADATA`` and is compared in constant time; a call without it is refused
as ``UNAUTHENTICATED`` before it sees a task or leaves a result. The link also notes
when its trainer last called, so the sidecar can tell a dead trainer from a slow one.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from fedsilo.identity import TlsCredentials, check_key_pair, read_tls
from fedsilo.protocol import (
    LINK_TOKEN_ENV,
    LINK_TOKEN_METADATA,
    MessageError,
    StreamError,
    TrainerReply,
    TrainerTask,
    frames_in,
    frames_out,
    link_ack,
    pb,
    rpc,
)

log = logging.getLogger("fedsilo.sidecar")

# The trainer re-asks after this long, so a cancelled call never holds a thread forever.
NEXT_TASK_WAIT_SECONDS = 30.0
# Tasks answered once, all at round 0: the statistics phase's, then hello.
ONE_SHOT_KINDS = frozenset({"statistics", "preprocess", "hello"})


@dataclass(frozen=True)
class TrainerResult:
    """What the trainer sent back for one task."""

    header: TrainerReply
    blob: bytes


class TrainerLinkService(rpc.TrainerLinkServicer):
    """Holds the current task and collects results, keyed by round."""

    def __init__(self, result_limit_bytes: int = 1 << 31, token: str | None = None) -> None:
        self._token = token.encode() if token else None
        self._calls_in_progress = 0
        self._last_call = time.monotonic()
        self._cond = threading.Condition()
        self._task: tuple[TrainerTask, bytes] | None = None
        self._results: dict[int, TrainerResult] = {}
        self._errors: dict[int, str] = {}
        # The newest round the trainer answered, and whether the task on offer is a round again
        # at or below it: a restarted hub resumes a round the trainer already trained.
        self._answered = 0
        self._replay = False
        # Whether the trainer has been handed the end of the job on offer (``offer_end``).
        self._end_taken = False
        self.result_limit_bytes = result_limit_bytes

    @classmethod
    def from_environment(cls) -> TrainerLinkService:
        """A link that demands the token in ``LINK_TOKEN_ENV`` when one is set (a local run sets it)."""
        return cls(token=os.environ.get(LINK_TOKEN_ENV))

    @property
    def authenticated(self) -> bool:
        """Whether every call must carry this silo's link token."""
        return self._token is not None

    def trainer_silent_for(self) -> float:
        """Seconds since the trainer last called the link (0 while a call is in progress)."""
        with self._cond:
            return 0.0 if self._calls_in_progress else time.monotonic() - self._last_call

    def _admit(self, context: grpc.ServicerContext) -> None:
        """Abort the call unless it carries this silo's token (compared in constant time)."""
        if self._token is not None:
            presented = dict(context.invocation_metadata()).get(LINK_TOKEN_METADATA, "")
            if not isinstance(presented, str) or not hmac.compare_digest(presented.encode(), self._token):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "this link belongs to another silo's trainer")
        with self._cond:
            self._calls_in_progress += 1

    def _release(self) -> None:
        with self._cond:
            self._calls_in_progress -= 1
            self._last_call = time.monotonic()

    def offer(self, task: TrainerTask, blob: bytes = b"") -> None:
        """Make a task available to the trainer.

        A round the trainer already answered (the hub was restarted and runs it again) is
        offered as a replay: the trainer, which asks only for rounds after its last, gets it
        anyway, and an old result of that round is dropped.
        """
        with self._cond:
            self._replay = task.kind in ("fit", "evaluate") and 0 < task.round <= self._answered
            if self._replay:
                self._results.pop(task.round, None)
                self._errors.pop(task.round, None)
            self._task = (task, blob)
            self._cond.notify_all()

    def offer_end(self, round_number: int, timeout: float) -> bool:
        """Offer the end of the job and wait (at most ``timeout``) for the trainer to take it; whether it did.

        The sidecar stops serving the link right after: a trainer that asked for its next task a
        moment later (between two calls, as after the statistics phase's last task) would find
        nobody there and wait out its patience, minutes, before it exits.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._task = (TrainerTask(kind="finished", round=round_number), b"")
            self._end_taken = False
            self._cond.notify_all()
            while not self._end_taken:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 1.0))
            return True

    def await_result(self, round_number: int, timeout: float) -> TrainerResult:
        """The trainer's result for ``round_number``; ``TimeoutError`` or ``MessageError`` otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while round_number not in self._results and round_number not in self._errors:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the trainer sent no result for round {round_number} within {timeout:.0f}s")
                self._cond.wait(min(remaining, 1.0))
            if round_number in self._errors:
                raise MessageError(self._errors.pop(round_number))
            return self._results.pop(round_number)

    def trainer_connected(self) -> bool:
        """Whether the trainer is on the link right now (a live, idle trainer long-polls ``NextTask``)."""
        with self._cond:
            return self._calls_in_progress > 0

    def next_task(
        self, next_round: int, timeout: float, caller_alive: Callable[[], bool] = lambda: True
    ) -> tuple[TrainerTask, bytes] | None:
        """The first task at or after ``next_round`` (hello and the end of the job always); None on timeout.

        A hello is handed out whatever round the trainer asks for: it comes from a sidecar that
        (re)started, whose trainer may have answered later rounds of the sidecar before it. That
        trainer asked only for rounds after its last, so the new sidecar's hello went unanswered
        and the sidecar restarted every five minutes (seen on the real cluster). Answering the
        hello takes the trainer back to round 1.

        ``caller_alive`` ends the wait early once the trainer has hung up (it died), so a dead
        trainer does not count as connected for the rest of its long poll.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._task is None or (
                self._task[0].round < next_round
                and self._task[0].kind not in ("finished", "hello")
                and not self._replay
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not caller_alive():
                    return None
                self._cond.wait(min(remaining, 1.0))
            if self._task[0].kind == "finished":
                self._end_taken = True
                self._cond.notify_all()
            return self._task

    def complete(self, reply: TrainerReply, blob: bytes) -> str | None:
        """Take a result for the task on offer; returns why it was refused, or None."""
        with self._cond:
            task = self._task[0] if self._task is not None else None
            if task is None or task.kind == "finished" or reply.round != task.round:
                offered = "no task" if task is None or task.kind == "finished" else f"round {task.round}"
                return f"result for round {reply.round}, but the task on offer is {offered}"
            self._answered = max(self._answered, reply.round)
            self._replay = False
            if task.kind in ONE_SHOT_KINDS:
                # Asked at round 0 and handed out whatever round the trainer asks for (hello) or
                # while it still asks from round 0 (the statistics phase): taken off the offer so
                # the trainer never answers it twice.
                self._task = None
            if reply.error is not None:
                self._errors[reply.round] = f"trainer failed: {reply.error}"
            else:
                self._results[reply.round] = TrainerResult(reply, blob)
            self._cond.notify_all()
        return None

    def NextTask(self, request: pb.TaskRequest, context: grpc.ServicerContext) -> Iterator[pb.Frame]:
        self._admit(context)
        try:
            task = self.next_task(request.next_round, NEXT_TASK_WAIT_SECONDS, context.is_active)
        finally:
            self._release()
        if task is None:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no task yet; ask again")
        yield from frames_out(*task)

    def Complete(self, request_iterator: Iterator[pb.Frame], context: grpc.ServicerContext) -> pb.Ack:
        self._admit(context)
        try:
            reply, blob = frames_in(request_iterator, self.result_limit_bytes, TrainerReply)
        except (MessageError, StreamError) as error:
            return link_ack(f"refused: {error}")
        finally:
            self._release()
        return link_ack(self.complete(reply, blob))


def _renewing_credentials(initial: TlsCredentials, identity_dir: Path) -> grpc.ServerCredentials:
    """Server credentials that take a renewed pair from ``identity_dir`` at the next handshake.

    In a cluster the silo operator renews the sidecar's short-lived certificate in the mounted
    Secret; the trainer verifies the link's certificate on every new connection, so the link
    must present the renewed one, as the sidecar's channel to the hub does (``_connection.py``).
    gRPC calls the fetcher at each handshake; it hands back the pair it has unless a new one is complete.
    """
    current = [initial]

    def configuration(tls: TlsCredentials) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(tls.private_key_pem, tls.certificate_pem)])

    presented = [configuration(initial)]

    def fetch() -> grpc.ServerCertificateConfiguration:
        try:
            tls = read_tls(identity_dir)
            if tls.certificate_pem == current[0].certificate_pem:
                return presented[0]
            check_key_pair(tls.private_key_pem, tls.certificate_pem)
        except (OSError, ValueError) as error:  # unreadable, or caught between key and certificate
            log.info("trainer link keeps its certificate: the files in %s are not a new pair (%s)", identity_dir, error)
            return presented[0]
        current[0], presented[0] = tls, configuration(tls)
        return presented[0]

    return grpc.dynamic_ssl_server_credentials(presented[0], fetch)


def start_link_server(
    service: TrainerLinkService, listen: str, credentials: TlsCredentials | None, identity_dir: Path | None = None
) -> grpc.Server:
    """Serve the trainer link on ``unix:PATH`` (no TLS needed) or a TCP address (TLS required).

    ``identity_dir``: where renewed ``tls.crt``/``tls.key`` appear; the link presents them from the next connection on.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="trainer-link"),
        options=[("grpc.max_receive_message_length", 4 << 20), ("grpc.max_send_message_length", 4 << 20)],
    )
    rpc.add_TrainerLinkServicer_to_server(service, server)
    if listen.startswith("unix:"):
        path = listen.removeprefix("unix:")
        # Only the socket's directory guards who may connect (a local run makes it the silo's
        # trainer uid's, mode 0700); the socket itself must be writable by that uid.
        old_umask = os.umask(0o111)
        try:
            port = server.add_insecure_port(listen)
        finally:
            os.umask(old_umask)
        if not service.authenticated:
            log.warning("the trainer link on %s takes calls without a token (no %s set)", path, LINK_TOKEN_ENV)
    else:
        if credentials is None:
            raise ValueError("a TCP trainer link needs TLS credentials; use unix:PATH locally")
        port = server.add_secure_port(
            listen,
            grpc.ssl_server_credentials([(credentials.private_key_pem, credentials.certificate_pem)])
            if identity_dir is None
            else _renewing_credentials(credentials, identity_dir),
        )
    if port == 0 and not listen.startswith("unix:"):
        raise OSError(f"cannot listen on {listen}")
    server.start()
    return server
