"""Parameters that never leave the silo: the first step of every update's way.

A job with personalization (``spec.personalization``) keeps some parameters in each silo:
FedPer heads, FedBN normalization layers, or any the job names. The trainer declares the
names it keeps when it greets its sidecar (``TrainerReply.private_parameters``, the job's
markings resolved on its model); ``private_names`` checks that declaration against the job
before the sidecar joins, and ``KeepPrivate`` refuses an update whose trainer model or whose
round model (the hub's layout, which the payload is encoded in) carries one of them, so no
private value is clipped, encoded, masked, signed or sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fedsilo.api import FederatedJobSpec
from fedsilo.protocol import PolicyVerdict, StreamError, decode_weights

from ._pipeline import Next, OutgoingUpdate, UpdateRefused


class PrivateParameterRefused(UpdateRefused):
    """An update that would carry a parameter the job keeps in the silo."""

    verdict_prefix = "withheld by sidecar"
    log_phrase = "withheld an update that carries a private parameter"


def private_names(spec: FederatedJobSpec, declared: Iterable[str]) -> frozenset[str]:
    """The parameters this silo keeps: the trainer's declaration, checked against the job.

    Raises:
        ValueError: the job keeps parameters and the trainer declares none, or declares none
            under an entry of ``personalization.privateParameters`` (a trainer that does not
            know what to keep must not train: its updates would carry them).
    """
    names = frozenset(declared)
    personal = spec.personalization
    if personal is None or not personal.keeps_private:
        if names:
            raise ValueError(f"the trainer keeps {sorted(names)[0]!r} private, but the job has no personalization")
        return names
    if not names:
        raise ValueError("the job keeps parameters in each silo, but the trainer declares none; update the trainer")
    for entry in personal.private_parameters:
        if not any(personal.marks(entry, name) for name in names):
            raise ValueError(
                f"spec.personalization.privateParameters names {entry!r}, but the trainer keeps nothing under it"
            )
    return names


@dataclass(frozen=True)
class KeepPrivate:
    """Step: refuse an update that would carry one of ``names`` (the first step, before anything is read)."""

    names: frozenset[str]

    def __call__(self, update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
        """Let the update on only if neither the round's model nor the trainer's carries a private parameter."""
        asked = sorted(self.names.intersection(spec.name for spec in update.layout.tensors))
        if asked:
            raise PrivateParameterRefused(
                f"private_parameter: the round's model carries {asked[0]!r}, which stays in this silo"
            )
        try:
            sent = decode_weights(update.model_bytes)
        except StreamError:
            return call_next(update)  # not a model at all: the check step names what is wrong
        leaked = sorted(self.names.intersection(sent))
        if leaked:
            raise PrivateParameterRefused(
                f"private_parameter: the trainer's model carries {leaked[0]!r}, which stays in this silo"
            )
        return call_next(update)
