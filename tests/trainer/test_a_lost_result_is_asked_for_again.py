"""A trainer whose sidecar goes while taking a result asks it for a task again, instead of crashing.

The sidecar may stop (its pod deleted) or restart while the trainer's ``Complete`` is in flight:
the call ends UNAVAILABLE (in CI, "GOAWAY received ... Server shutdown"), and the trainer died
of it with a traceback. That race cannot be timed from a test, so the link here answers the
first result UNAVAILABLE itself, as a stopping sidecar's server does; everything else is real:
the trainer process, its model and data, and the link's gRPC server on a unix socket.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc

from fedsilo.api import FederatedJobSpec
from fedsilo.protocol import TrainerTask, pb
from fedsilo.sidecar import TrainerLinkService, start_link_server
from fedsilo.trainer import run_trainer


class _LosesTheFirstResult(TrainerLinkService):
    """A link whose first ``Complete`` ends UNAVAILABLE, as when the sidecar's server shuts down under it."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = threading.Event()

    def Complete(self, request_iterator: Iterator[pb.Frame], context: grpc.ServicerContext) -> pb.Ack:
        if not self.lost.is_set():
            self.lost.set()
            context.abort(grpc.StatusCode.UNAVAILABLE, "the sidecar is stopping")
        return super().Complete(request_iterator, context)


def test_the_trainer_answers_again_after_its_result_was_lost(tmp_path: Path, spec: FederatedJobSpec) -> None:
    link = _LosesTheFirstResult()
    socket = f"unix:{tmp_path / 'link.sock'}"
    server = start_link_server(link, socket, None)
    trainer = multiprocessing.get_context("spawn").Process(target=run_trainer, args=(spec, spec.silos[0], socket))
    trainer.start()
    try:
        link.offer(TrainerTask(kind="hello", round=0))
        assert link.lost.wait(300), "the trainer never sent its hello result"
        # Still on offer: the trainer asked for a task again and answered it.
        result = link.await_result(0, 120)
        assert result.header.num_samples and result.header.num_samples > 0
        assert link.offer_end(1, 60)
        trainer.join(60)
        assert trainer.exitcode == 0
    finally:
        if trainer.is_alive():
            trainer.kill()
        server.stop(None)
