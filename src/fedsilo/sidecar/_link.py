"""The sidecar's side of the trainer link: a gRPC service the trainer (and only it) calls.

The sidecar posts one task at a time (``offer``) and waits for its result
(``await_result``); the trainer pulls the task with ``NextTask`` and answers with
``Complete``. Locally this listens on a Unix socket inside the run directory, so a
trainer in its own network namespace can still reach it and nothing else can.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc

from fedsilo.identity import TlsCredentials
from fedsilo.protocol import MessageError, StreamError, frames_in, frames_out, pb, rpc

# The trainer re-asks after this long, so a cancelled call never holds a thread forever.
NEXT_TASK_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class TrainerResult:
    """What the trainer sent back for one task."""

    header: dict[str, Any]
    blob: bytes


class TrainerLinkService(rpc.TrainerLinkServicer):
    """Holds the current task and collects results, keyed by round."""

    def __init__(self, result_limit_bytes: int = 1 << 31) -> None:
        self._cond = threading.Condition()
        self._task: tuple[int, dict[str, Any], bytes] | None = None
        self._results: dict[int, TrainerResult] = {}
        self._errors: dict[int, str] = {}
        self.result_limit_bytes = result_limit_bytes

    def offer(self, round_number: int, header: dict[str, Any], blob: bytes) -> None:
        """Make a task available to the trainer."""
        with self._cond:
            self._task = (round_number, {**header, "round": round_number}, blob)
            self._cond.notify_all()

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

    def next_task(self, next_round: int, timeout: float) -> tuple[dict[str, Any], bytes] | None:
        """The first task at or after ``next_round`` (the end of the job always); None on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._task is None or (self._task[0] < next_round and self._task[1].get("kind") != "finished"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(min(remaining, 1.0))
            _, header, blob = self._task
            return header, blob

    def complete(self, header: dict[str, Any], blob: bytes) -> str | None:
        """Take a result; returns why it was refused, or None."""
        round_number = header.get("round")
        if not isinstance(round_number, int):
            return "result header has no integer round"
        with self._cond:
            if "error" in header:
                self._errors[round_number] = f"trainer failed: {header['error']}"
            else:
                self._results[round_number] = TrainerResult(header, blob)
            self._cond.notify_all()
        return None

    def NextTask(self, request: pb.TaskRequest, context: grpc.ServicerContext) -> Iterator[pb.Frame]:
        task = self.next_task(request.next_round, NEXT_TASK_WAIT_SECONDS)
        if task is None:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no task yet; ask again")
        yield from frames_out(*task)

    def Complete(self, request_iterator: Iterator[pb.Frame], context: grpc.ServicerContext) -> pb.Ack:
        try:
            header, blob = frames_in(request_iterator, self.result_limit_bytes)
        except (MessageError, StreamError) as error:
            return pb.Ack(ok=False, message=str(error))
        problem = self.complete(header, blob)
        return pb.Ack(ok=problem is None, message=problem or "")


def start_link_server(service: TrainerLinkService, listen: str, credentials: TlsCredentials | None) -> grpc.Server:
    """Serve the trainer link on ``unix:PATH`` (no TLS needed) or a TCP address (TLS required)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="trainer-link"),
        options=[("grpc.max_receive_message_length", 4 << 20), ("grpc.max_send_message_length", 4 << 20)],
    )
    rpc.add_TrainerLinkServicer_to_server(service, server)
    if listen.startswith("unix:"):
        port = server.add_insecure_port(listen)
    else:
        if credentials is None:
            raise ValueError("a TCP trainer link needs TLS credentials; use unix:PATH locally")
        port = server.add_secure_port(
            listen,
            grpc.ssl_server_credentials([(credentials.private_key_pem, credentials.certificate_pem)]),
        )
    if port == 0 and not listen.startswith("unix:"):
        raise OSError(f"cannot listen on {listen}")
    server.start()
    return server
