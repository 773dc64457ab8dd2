"""The headers of the trainer link: what a sidecar asks of its trainer and what the trainer answers.

Both processes read these through ``StrictMessage.parse`` (via ``frames_in``), so a header
from either side that is malformed, oversized, carries an unknown field or a value out of
range is refused with a ``MessageError`` naming the field, never a crash. The trainer is
untrusted code from the sidecar's point of view, and the sidecar is the only party the
trainer listens to; every count and score here is bounded before anyone uses it.
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from ._strict import StrictMessage

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


class TrainerTask(StrictMessage):
    """The sidecar's task header: say hello (round 0), fit, evaluate or personalize a round's model, or stop.

    ``fit``, ``evaluate`` and ``personalize`` come with the global model's bytes after the
    header. ``personalize`` (the closing evaluation of a job that fine-tunes) asks the trainer
    to score the model, fine-tune it on its own data and score it again; nothing of the
    fine-tuned model comes back.
    """

    kind: Literal["hello", "fit", "evaluate", "personalize", "finished"]
    round: Round
    # The round's fit configuration (the strategy's ``FitConfig`` fields), for ``fit`` only.
    fit_config: dict[str, Any] = Field(default_factory=dict)


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

    @model_validator(mode="after")
    def _one_kind_of_answer(self) -> Self:
        if self.error is not None and (self.fit is not None or self.num_samples is not None):
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
