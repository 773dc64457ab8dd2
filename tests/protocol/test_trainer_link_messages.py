"""The trainer link's headers are typed on both sides: a malformed, out-of-range or unknown
header from the sidecar or from the trainer is a ``MessageError`` naming the field, never a crash."""

from __future__ import annotations

import pytest

from fedsilo.protocol import (
    MessageError,
    TrainerEvaluation,
    TrainerFitReport,
    TrainerReply,
    TrainerTask,
    frames_in,
    frames_out,
    pb,
)


def test_a_task_and_a_reply_round_trip_through_frames() -> None:
    task = TrainerTask(kind="fit", round=3, fit_config={"round": 3, "local_epochs": 1})
    header, blob = frames_in(frames_out(task, b"model"), 1 << 20, TrainerTask)
    assert header == task and blob == b"model"
    reply = TrainerReply(
        round=3,
        evaluation=TrainerEvaluation(loss=0.5, accuracy=0.9, num_samples=10),
        fit=TrainerFitReport(num_samples=100, train_loss=0.4, steps=10, batch_size=10),
    )
    assert frames_in(frames_out(reply, b""), 1 << 20, TrainerReply) == (reply, b"")


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ('{"kind":"train","round":1}', "kind"),
        ('{"kind":"fit","round":-1}', "round"),
        ('{"kind":"fit","round":"1"}', "round"),
        ('{"kind":"fit","round":1,"extra":true}', "extra"),
        ('{"kind":"fit","round":1,"round":2}', "duplicate key"),
        ('{"kind":"fit","round":1' + ',"fit_config":{"a":' * 40 + "1" + "}" * 41, "nested"),
        ("[1]", "not a JSON object"),
        ("not json", "not JSON"),
    ],
)
def test_a_malformed_task_is_refused_naming_what_is_wrong(header: str, field: str) -> None:
    with pytest.raises(MessageError, match=field):
        frames_in([pb.Frame(header_json=header)], 1 << 20, TrainerTask)


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ('{"round":1,"num_samples":0}', "num_samples"),
        ('{"round":1,"num_samples":' + "9" * 30 + "}", "num_samples"),
        ('{"round":1,"num_samples":true}', "num_samples"),
        ('{"round":1,"evaluation":{"loss":0.1,"accuracy":123.0,"num_samples":5}}', "accuracy"),
        ('{"round":1,"evaluation":{"loss":-7.0,"accuracy":0.5,"num_samples":5}}', "loss"),
        ('{"round":1,"evaluation":{"loss":NaN,"accuracy":0.5,"num_samples":5}}', "NaN"),
        ('{"round":1,"fit":{"num_samples":1,"train_loss":1e999,"steps":1,"batch_size":1}}', "overflows"),
        ('{"round":1,"error":"boom","num_samples":4}', "a failed task carries no results"),
        ('{"round":1,"error":"' + "x" * 5000 + '"}', "error"),
    ],
)
def test_a_malformed_reply_is_refused_naming_what_is_wrong(header: str, field: str) -> None:
    with pytest.raises(MessageError, match=field):
        frames_in([pb.Frame(header_json=header)], 1 << 20, TrainerReply)


def test_a_frame_stream_without_a_header_first_is_refused() -> None:
    with pytest.raises(MessageError, match="must start with a header"):
        frames_in([pb.Frame(blob=pb.BytesChunk(offset=0, total=0, data=b""))], 1 << 20, TrainerReply)
