"""Updates on the sidecar's way out, without a hub: the sidecar step tests' one update builder and wire.

``outgoing_update`` is what the sidecar holds once its trainer answered (the round's plan,
the global model, the trainer's model); ``Wire`` is the last step in place of ``Send``: it
keeps what would have gone to the hub and answers with a verdict; ``silo_dp_steps`` is the
way of a silo-level DP update, as ``Sidecar.steps`` builds it for a plain job.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedsilo.identity import SigningKey
from fedsilo.protocol import PolicyVerdict, RoundPlan, TensorLayout, encode_weights
from fedsilo.sidecar._pipeline import Next, OutgoingUpdate, Step
from fedsilo.sidecar._privacy import ChargeLedger, PrivacyGuard, SiloNoise
from fedsilo.sidecar._sending import Sign
from fedsilo.sidecar._update import Clip, check_weights, plain_encode

Tensors = dict[str, np.ndarray[Any, Any]]


class Wire:
    """The final step of the step tests: keeps what would have gone to the hub and answers with a verdict."""

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.sent: list[OutgoingUpdate] = []

    def __call__(self, update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
        """Keep ``update``; the verdict the hub would give."""
        self.sent.append(update)
        return PolicyVerdict(self.accept, ())


def outgoing_update(plan: RoundPlan, global_model: Tensors, local: Tensors, records: int = 40) -> OutgoingUpdate:
    """The update of a trainer that trained ``global_model`` into ``local`` on ``records`` records (all of them)."""
    layout = TensorLayout.of(global_model)
    return OutgoingUpdate(plan, layout, layout.flatten(global_model), encode_weights(local), {}, records, records)


def silo_dp_steps(guard: PrivacyGuard, wire: Wire, *after_noise: Step) -> list[Step]:
    """A plain job's way under silo-level DP, signed by a new key; ``after_noise`` goes between noise and encoding."""
    return [
        check_weights,
        Clip(norm_cap=1.0, clip_range=4.0),
        SiloNoise(guard, clip_range=4.0),
        *after_noise,
        plain_encode,
        ChargeLedger(guard),
        Sign("job", "a", SigningKey.generate()),
        wire,
    ]
