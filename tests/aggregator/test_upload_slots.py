"""The hub's upload slots: reservations count against them, are taken by their silo's upload, and lapse."""

from __future__ import annotations

import threading

import pytest

from fedsilo.aggregator._uploads import UploadSlots
from fedsilo.policy import Reason, Refusal


def test_a_reserved_slot_is_taken_by_its_silos_upload_without_waiting() -> None:
    slots = UploadSlots(2)
    slots.reserve("a", timeout=1)
    with slots.hold("b", timeout=1):
        # Both slots are spoken for: a third silo waits, and is refused when its time is up.
        with pytest.raises(Refusal) as refused:
            slots.reserve("c", timeout=0.2)
        assert refused.value.reason is Reason.UPLOAD_BUSY
        with slots.hold("a", timeout=0), pytest.raises(Refusal):  # a's own reservation: no wait
            slots.reserve("c", timeout=0.2)


def test_a_reservation_renewed_keeps_one_slot() -> None:
    slots = UploadSlots(2)
    slots.reserve("a", timeout=1)
    slots.reserve("a", timeout=1)
    slots.reserve("b", timeout=1)  # the second slot is still free for b


def test_a_silo_uploading_cannot_also_reserve_nor_upload_twice() -> None:
    slots = UploadSlots(2)
    with slots.hold("a", timeout=1):
        for attempt in (lambda: slots.reserve("a", timeout=1), lambda: slots.hold("a", timeout=1).__enter__()):
            with pytest.raises(Refusal, match="a is already uploading an update; one at a time"):
                attempt()


def test_an_unused_reservation_lapses_and_frees_its_slot() -> None:
    slots = UploadSlots(1, reservation_seconds=0.3)
    slots.reserve("a", timeout=1)
    # b gets the only slot once a's reservation lapses; a's upload then waits like anyone's.
    with slots.hold("b", timeout=10), pytest.raises(Refusal), slots.hold("a", timeout=0.2):
        pass


def test_a_waiting_reservation_is_answered_when_an_upload_ends() -> None:
    slots = UploadSlots(1)
    granted = threading.Event()
    with slots.hold("a", timeout=1):
        waiter = threading.Thread(target=lambda: (slots.reserve("b", timeout=30), granted.set()))
        waiter.start()
        assert not granted.wait(0.5)
    assert granted.wait(10)
    waiter.join()
