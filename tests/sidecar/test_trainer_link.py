"""The sidecar's end of the trainer link tells a waiting trainer from a dead one: a trainer with a
task request open is heard from now; one that stopped calling has been silent since its last call."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc

from fedsilo.protocol import LINK_TOKEN_METADATA, TrainerReply, TrainerTask, frames_in, rpc, task_request
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


def test_a_restarted_sidecars_hello_reaches_a_trainer_that_answered_later_rounds() -> None:
    # The trainer outlived its sidecar (a container restart) after answering round 5; it asks
    # for round 6 on. The new sidecar starts with hello, which must reach it all the same.
    restarted = TrainerLinkService()
    restarted.offer(TrainerTask(kind="hello", round=0))
    task = restarted.next_task(6, timeout=5)
    assert task is not None and task[0].kind == "hello"
    # Answered once, it is off the offer: the trainer, now asking from round 1, is not handed it again.
    assert restarted.complete(TrainerReply(round=0, num_samples=40), b"") is None
    assert restarted.next_task(1, timeout=0.2) is None
    # Other kinds still wait for the round the trainer asks for.
    restarted.offer(TrainerTask(kind="evaluate", round=3), b"model")
    assert restarted.next_task(6, timeout=0.2) is None


def test_the_end_of_the_job_waits_for_a_trainer_between_two_calls_and_not_for_one_that_never_calls() -> None:
    # The sidecar closes the link once the job is over; a trainer that asks a moment after the end
    # was offered (it was sending its last result) must still be handed it, or it waits out its patience.
    link = TrainerLinkService()
    taken: list[TrainerTask] = []

    def late_trainer() -> None:
        time.sleep(0.5)
        task = link.next_task(0, timeout=5)
        assert task is not None
        taken.append(task[0])

    asking = threading.Thread(target=late_trainer)
    asking.start()
    assert link.offer_end(0, timeout=30) is True
    asking.join(10)
    assert [(task.kind, task.round) for task in taken] == [("finished", 0)]
    # Nobody takes it: the wait ends at its bound, and says so.
    assert TrainerLinkService().offer_end(1, timeout=0.2) is False
