"""An update's way from the trainer's result to the wire, as an ordered list of steps.

Each step is a callable ``step(update, call_next) -> verdict`` in the manner of Flower's
client mods: it reads and fills the typed ``OutgoingUpdate``, calls the rest of the way,
and may act on the verdict that comes back (the privacy ledger acknowledges an accepted
release; a masked submission unmasks). A step that will not let the update go raises
``UpdateRefused`` with a stable reason code; ``run_steps`` turns that into the
sidecar's own denial, so no step decides how a refusal is reported. The sidecar builds
the list once per job in ``Sidecar.steps``; adding a compressor or an encryptor is adding
one step to that list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from fedsilo.privacy import Mechanism
from fedsilo.protocol import FloatVector, PolicyVerdict, RoundCompression, RoundPlan, TensorLayout

log = logging.getLogger("fedsilo.sidecar")


class UpdateRefused(Exception):
    """A step will not let this update leave the silo; ``reason`` starts with a stable code."""

    # How the denial reads in the sidecar's verdict and in its log (the reason follows).
    verdict_prefix = "refused by sidecar"
    log_phrase = "refused this silo's update"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Payload:
    """The encoded update as it goes on the wire: its dtype, its chunks and their digest."""

    dtype: str
    chunks: Callable[[], Iterator[tuple[int, npt.NDArray[np.generic]]]]
    digest: str


@dataclass
class OutgoingUpdate:
    """One update on its way out; steps fill the fields below the line in list order."""

    plan: RoundPlan
    layout: TensorLayout
    global_vector: FloatVector
    # The trainer's local model (safetensors bytes; emptied by the check step once decoded) and its fit report, not yet trusted.
    model_bytes: bytes
    fit_report: dict[str, Any]
    # The records behind the update (what the policy's minimum reads).
    records: int
    # The update's weight in the mean: the records, or 1 in silo-level DP (DP-FedAvg).
    weight: int
    # ----- filled by the steps --------------------------------------------------------------
    local_vector: FloatVector | None = None
    # ``architecture_fingerprint`` of the trainer's weights, signed for the hub's compatibility step.
    architecture: str = ""
    delta: FloatVector | None = None
    # The clipped update's norm, before any silo-level noise: the sensitivity the noise covers.
    l2_norm: float = 0.0
    mechanism: Mechanism | None = None
    epsilon_round: float | None = None
    # The compress step's output (masked: levels to mask; plain: payload bytes) and its settings.
    compressed: npt.NDArray[np.generic] | None = None
    compression: RoundCompression | None = None
    # The release kept for a resumed round, sent again: already charged (``_privacy``).
    resent: bool = False
    payload: Payload | None = None
    signed_metadata: bytes = b""
    signature: bytes = b""

    def require_delta(self) -> FloatVector:
        """The update vector; a step that needs it before the clip step is a wiring error."""
        if self.delta is None:
            raise RuntimeError("no update vector yet: the clip step must come before this one")
        return self.delta

    def require_payload(self) -> Payload:
        """The encoded payload; a step that needs it before an encode step is a wiring error."""
        if self.payload is None:
            raise RuntimeError("no payload yet: an encode step must come before this one")
        return self.payload


Next = Callable[[OutgoingUpdate], PolicyVerdict]


class Step(Protocol):
    """One step of an update's way out: do your part, call ``call_next``, return its verdict."""

    def __call__(self, update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
        """Transform ``update`` (or raise ``UpdateRefused``) and pass it on."""
        ...


def run_steps(steps: Sequence[Step], update: OutgoingUpdate) -> PolicyVerdict:
    """Run ``update`` through ``steps`` in order; a refusal becomes the sidecar's own denial."""

    def call(index: int, current: OutgoingUpdate) -> PolicyVerdict:
        if index == len(steps):
            raise RuntimeError("the last step must send the update and return the hub's verdict")
        return steps[index](current, lambda following: call(index + 1, following))

    try:
        return call(0, update)
    except UpdateRefused as refusal:
        return refusal_verdict(update.plan.round, refusal)


def refusal_verdict(round_number: int, refusal: UpdateRefused) -> PolicyVerdict:
    """The sidecar's own denial for ``refusal``, logged once with its reason."""
    log.warning("round %d: %s: %s", round_number, refusal.log_phrase, refusal.reason)
    return PolicyVerdict(False, (f"{refusal.verdict_prefix}: {refusal.reason}",))
