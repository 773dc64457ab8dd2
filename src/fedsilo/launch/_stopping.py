"""How a job's processes stop when asked: SIGTERM becomes :class:`Terminated` in the main thread.

The pod processes (``fedsilo aggregator``, ``fedsilo sidecar``, ``fedsilo trainer``) run as
PID 1 of their containers, and the kernel gives PID 1 no default action for SIGTERM: without
a handler the kubelet's SIGTERM is ignored and every deleted pod waits out its whole grace
period (30 s by default) before SIGKILL. The aggregator (``fedsilo.runner``) and the command
line (``fedsilo.cli``, for the sidecar and the trainer) install the one handler here; the
command line turns :class:`Terminated` into its exit code and then, with
:func:`exit_if_terminated`, ends the process without waiting for server threads.

Stopping by an exception is as safe for the durable files as a crash, and cleaner: the
privacy ledger's write is one SQLite transaction (rolled back by any exception, or by the
connection closing uncommitted), and kept releases, checkpoints and the registry are written
to a temporary file and renamed, so a write cut short leaves the old file. ``finally``
blocks then close the gRPC channels and servers, so peers see the calls cancelled at once
instead of a silence that lasts until a deadline.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

# Set by the handler: the process was asked to stop, whether or not Terminated reached the top.
_asked = threading.Event()


class Terminated(BaseException):
    """SIGTERM arrived before the process was done: the kubelet (or a user) wants it gone.

    A BaseException, like KeyboardInterrupt: it is a request to stop, not an error, so the
    ``except Exception`` of a round loop (which ends a broken job as Failed) lets it through
    and the job stays resumable. As an Exception it made every deleted aggregator pod fail its job.
    """


def raise_on_sigterm() -> None:
    """Turn the first SIGTERM into :class:`Terminated` in the main thread, so ``finally`` blocks run.

    Call it from the main thread (``signal.signal`` refuses any other). Later SIGTERMs are
    ignored so the clean-up is not cut short; the kubelet still kills the process after the
    pod's grace period.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _asked.set()
        raise Terminated

    signal.signal(signal.SIGTERM, handler)


def exit_if_terminated(code: int) -> int:
    """``code``; after a SIGTERM, the process ends here with it instead, not waiting for other threads.

    Python joins every non-daemon thread at exit, gRPC's handler threads among them, and a
    handler still waiting out a long poll (a silo's WaitRound) held a deleted aggregator pod
    for its whole grace period after its clean-up had finished, until SIGKILL (seen in the
    cluster: "terminated" logged, the pod gone 30 s later). Called by the command line once the
    command has returned, so every ``finally`` (the audit log's closing checkpoint, the ledger,
    the channels) has run; logs and standard streams are flushed first.
    """
    if not _asked.is_set():
        return code
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
