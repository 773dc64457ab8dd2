"""The headers of the trainer link: what a sidecar asks of its trainer and what the trainer answers.

Both processes read these through ``StrictMessage.parse`` (via ``frames_in``), so a header
from either side that is malformed, oversized, carries an unknown field or a value out of
range is refused with a ``MessageError`` naming the field, never a crash. The trainer is
untrusted code from the sidecar's point of view, and the sidecar is the only party the
trainer listens to; every count and score here is bounded before anyone uses it.
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
from typing import Annotated, Any, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from ._messages import MAX_VECTOR_LENGTH
from ._statistics import MAX_FEATURES
from ._strict import MessageError, StrictMessage

# The environment variable that carries a silo's link token to its sidecar and its trainer only
# (never a flag: argv is world-readable in /proc), and the call metadata key the trainer sends it in.
LINK_TOKEN_ENV = "FEDSILO_LINK_TOKEN"  # noqa: S105 (a variable name, not a secret)
LINK_TOKEN_METADATA = "x-fedsilo-link-token"  # noqa: S105 (a header name, not a secret)
# Set by a local run: the pid the silo's processes must not outlive.
PARENT_PID_ENV = "FEDSILO_PARENT_PID"
_PR_SET_PDEATHSIG = 1

# Far above any silo's records, far below what fixed-point weights or the accountant could misread.
MAX_RECORDS = 1 << 40
# A round number no job reaches (jobs run at most a few thousand rounds).
MAX_ROUND = 1 << 31

Round = Annotated[int, Field(ge=0, le=MAX_ROUND)]
Records = Annotated[int, Field(ge=1, le=MAX_RECORDS)]


# A parameter name on the link (a state-dict key), and how many private ones a trainer may declare.
ParameterName = Annotated[str, Field(min_length=1, max_length=256)]
MAX_PRIVATE_PARAMETERS = 4096


Column = Annotated[int, Field(ge=0, lt=MAX_FEATURES)]
Columns = tuple[Column, ...]


class StatisticsAsk(StrictMessage):
    """What a sidecar asks its trainer for in the statistics phase (the task's ``statistics``).

    ``describe``: the width and record count of the silo's training records (the sidecar
    sizes its plan from the width, and checks the count against ``minCount`` itself).
    ``moments`` / ``histogram``: that pass's noise-free totals over the columns the sidecar's
    plan names (``fedsilo.statistics.Columns``: the trainer computes, the plan stays the
    sidecar's); ``histogram`` names the public range per numeric column the hub published.
    """

    step: Literal["describe", "moments", "histogram"]
    numeric: Columns = Field(default=(), max_length=MAX_FEATURES)
    categorical: Columns = Field(default=(), max_length=MAX_FEATURES)
    codes: Annotated[int, Field(ge=1, le=MAX_FEATURES)] = 1
    bins: Annotated[int, Field(ge=1, le=MAX_FEATURES)] = 1
    private: bool = False
    ranges: tuple[tuple[Column, float, float], ...] = Field(default=(), max_length=MAX_FEATURES)

    @model_validator(mode="after")
    def _fits_its_step(self) -> Self:
        if self.step == "describe" and (self.numeric or self.categorical):
            raise ValueError("numeric, categorical: a describe ask names no columns")
        if set(self.numeric) & set(self.categorical) or len(set(self.numeric)) != len(self.numeric):
            raise ValueError("numeric, categorical: every column is named once, as numeric or as categorical")
        if self.step != "histogram" and self.ranges:
            raise ValueError(f"ranges: only a histogram ask carries ranges, not a {self.step} ask")
        for column, low, high in self.ranges:
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"ranges: column {column} needs finite numbers with low < high")
        if self.step == "histogram" and sorted(c for c, _, _ in self.ranges) != sorted(self.numeric):
            raise ValueError("ranges: a histogram ask gives one range for each numeric column, and no other")
        return self


class StatisticsTotals(StrictMessage):
    """The trainer's answer to a statistics ask; a pass's vector follows as ``values`` little-endian float64s."""

    features: Annotated[int, Field(ge=1, le=MAX_FEATURES)]
    records: Annotated[int, Field(ge=0, le=MAX_RECORDS)]
    # How many float64 values the blob holds (0 for describe).
    values: Annotated[int, Field(ge=0, le=MAX_VECTOR_LENGTH)] = 0


def encode_totals(vector: npt.NDArray[np.float64]) -> bytes:
    """A pass's totals as the link carries them: little-endian float64s."""
    return np.ascontiguousarray(vector, dtype="<f8").tobytes()


def decode_totals(header: StatisticsTotals, blob: bytes, expected: int) -> npt.NDArray[np.float64]:
    """A pass's totals from the trainer, checked: ``expected`` finite values, as many as the header says.

    Raises ``MessageError`` naming what is wrong, so a broken or hostile trainer can never
    send a vector of the wrong shape, or a NaN that would poison every silo's sum, to the hub.
    """
    if header.values != expected:
        raise MessageError(f"StatisticsTotals.values: {header.values}, but this pass's plan has {expected} values")
    if len(blob) != 8 * expected:
        raise MessageError(f"StatisticsTotals: the blob holds {len(blob)} bytes, not {expected} float64 values")
    vector = np.frombuffer(blob, dtype="<f8").astype(np.float64)
    if not np.all(np.isfinite(vector)):
        raise MessageError("StatisticsTotals: the totals hold a NaN or infinity")
    return vector


class TrainerTask(StrictMessage):
    """The sidecar's task header: say hello (round 0), fit, evaluate or personalize a round's model, or stop.

    Before hello, a job with federated preprocessing has two more kinds (both at round 0,
    answered once each): ``statistics`` asks for the silo's totals (``statistics`` says
    which), and ``preprocess`` hands over the fitted transform the hub released (its
    canonical JSON after the header), which the trainer applies to its records before it
    builds its model.

    ``fit``, ``evaluate`` and ``personalize`` come with the global model's bytes after the
    header. ``personalize`` (the closing evaluation of a job that fine-tunes) asks the trainer
    to score the model, fine-tune it on its own data and score it again; nothing of the
    fine-tuned model comes back.
    """

    kind: Literal["hello", "statistics", "preprocess", "fit", "evaluate", "personalize", "finished"]
    round: Round
    # The round's fit configuration (the strategy's ``FitConfig`` fields), for ``fit`` only.
    fit_config: dict[str, Any] = Field(default_factory=dict)
    statistics: StatisticsAsk | None = None

    @model_validator(mode="after")
    def _statistics_with_its_kind(self) -> Self:
        if (self.kind == "statistics") != (self.statistics is not None):
            raise ValueError("statistics: a statistics task (and only one) says what it asks for")
        if self.kind in ("statistics", "preprocess") and self.round != 0:
            raise ValueError(f"round: a {self.kind} task comes before training, at round 0")
        return self


class TrainerEvaluation(StrictMessage):
    """The trainer's score of the global model on its held-out split."""

    loss: Annotated[float, Field(ge=0.0)]
    accuracy: Annotated[float, Field(ge=0.0, le=1.0)]
    num_samples: Records


class TrainerFitReport(StrictMessage):
    """What local training did: the update's weight, and the DP-SGD facts the silo's ledger charges for."""

    num_samples: Records
    train_loss: float
    steps: Annotated[int, Field(ge=0, le=MAX_RECORDS)]
    batch_size: Annotated[int, Field(ge=0, le=MAX_RECORDS)]
    metrics: dict[str, float] = Field(default_factory=dict)
    noise_multiplier: float | None = None
    max_grad_norm: float | None = None
    sample_rate: float | None = None


class TrainerReply(StrictMessage):
    """The trainer's answer to one task: its record count (hello), its failure, or its round's results.

    A ``fit`` answer carries the local model's bytes after the header.
    """

    round: Round
    # hello: how many training records the silo has (its privacy plan and Join count).
    num_samples: Records | None = None
    # hello: the parameters that stay in this silo (the job's personalization resolved on the
    # model); the sidecar refuses any update or model that would carry one of them out.
    private_parameters: tuple[ParameterName, ...] = Field(default=(), max_length=MAX_PRIVATE_PARAMETERS)
    # Why the task failed (the sidecar skips the round and logs it).
    error: Annotated[str, Field(max_length=4096)] | None = None
    evaluation: TrainerEvaluation | None = None
    fit: TrainerFitReport | None = None
    # personalize: the score of the silo's model after local fine-tuning.
    personalized: TrainerEvaluation | None = None
    # statistics: the silo's totals (their values follow as the blob).
    totals: StatisticsTotals | None = None

    @model_validator(mode="after")
    def _one_kind_of_answer(self) -> Self:
        if self.error is not None and (self.fit is not None or self.num_samples is not None or self.totals is not None):
            raise ValueError("a failed task carries no results")
        return self


def follow_parent() -> None:
    """End this process (SIGTERM) when the local run that started it dies, even by SIGKILL.

    Does nothing unless ``PARENT_PID_ENV`` is set (a cluster pod has no such parent). Exits
    at once if that parent is already gone, so an orphan never starts its loop.
    """
    expected = os.environ.get(PARENT_PID_ENV)
    if not expected:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if str(os.getppid()) != expected:
        raise SystemExit(f"the run that started this process (pid {expected}) is gone")
