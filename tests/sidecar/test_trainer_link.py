"""The sidecar's end of the trainer link tells a waiting trainer from a dead one: a trainer with a
task request open is heard from now; one that stopped calling has been silent since its last call."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc

from fedsilo.protocol import LINK_TOKEN_METADATA, TrainerTask, frames_in, rpc, task_request
from fedsilo.sidecar import TrainerLinkService, start_link_server


def test_a_trainer_waiting_for_a_task_is_not_silent_and_a_gone_one_is(tmp_path: Path) -> None:
    link = TrainerLinkService(token="secret-token")
    socket = tmp_path / "trainer.sock"
    server = start_link_server(link, f"unix:{socket}", None)
    try:
        received: list[TrainerTask] = []

        def trainer() -> None:
            with grpc.insecure_channel(f"unix:{socket}") as channel:
                stream = rpc.TrainerLinkStub(channel).NextTask(
                    task_request("a", 1), timeout=60, metadata=((LINK_TOKEN_METADATA, "secret-token"),)
                )
                received.append(frames_in(stream, 1 << 20, TrainerTask)[0])

        waiting = threading.Thread(target=trainer)
        waiting.start()
        deadline = time.monotonic() + 30
        while link.trainer_silent_for() != 0.0:
            assert time.monotonic() < deadline, "the trainer's open request was never seen"
            time.sleep(0.05)
        link.offer(TrainerTask(kind="fit", round=1), b"model")
        waiting.join(30)
        assert [task.round for task in received] == [1]
        time.sleep(0.3)
        assert link.trainer_silent_for() >= 0.2
    finally:
        server.stop(grace=0)
