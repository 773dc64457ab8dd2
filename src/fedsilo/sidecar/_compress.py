"""The compress step: after clipping and noise, before masking or encoding (``Sidecar.steps``).

It compresses the update with the round's published settings (``RoundPlan.compression``):
masked mode gets the levels to mask (``MaskedEncode`` masks them mod 2^32, keeps the low
``word_bits`` bits and packs them), plain mode its payload bytes (``plain_encode`` sends
them); a masked sign-vote job's levels are its update's signs (the vote's words, no
residual). Error feedback stays here, in the silo: the residual of an accepted update is kept
for the next round and never sent. Because it runs after the noise step, what it changes
is post-processing of what the privacy ledger was charged for (docs/compression.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from fedsilo.compression import CompressionError, ErrorFeedback, masked_levels, plain_payload, round_vote_levels
from fedsilo.identity import sha256_digest
from fedsilo.protocol import CHUNK_BYTES, PolicyVerdict

from ._pipeline import Next, OutgoingUpdate, Payload, UpdateRefused

log = logging.getLogger("fedsilo.sidecar")


@dataclass
class Compress:
    """Step: the round's compression of the update, with this silo's error feedback."""

    masked: bool
    error_feedback: bool
    # A masked sign vote: the levels are the update's signs in the round's vote words (``round_vote_levels``).
    vote: bool = False
    # Stochastic rounding's randomness: the OS's entropy unless a test fixes it.
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    feedback: ErrorFeedback = field(default_factory=ErrorFeedback)

    def __call__(self, update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
        """Compress, pass on, and keep the residual if the hub accepted the update."""
        settings = update.plan.compression
        if self.vote:
            return call_next(self._vote(update))
        if settings is None:
            return call_next(update)
        residual = self.feedback.residual if self.error_feedback else None
        make = masked_levels if self.masked else plain_payload
        try:
            compressed = make(update.require_delta(), residual, update.weight, settings, self.rng)
        except CompressionError as error:
            raise UpdateRefused(f"compression_failed: {error}") from error
        update.compressed, update.compression = compressed.data, settings
        verdict = call_next(update)
        if verdict.accepted and self.error_feedback:
            self.feedback.commit(compressed.residual)
        return verdict

    @staticmethod
    def _vote(update: OutgoingUpdate) -> OutgoingUpdate:
        """The update's signs as the levels to mask: no residual (a vote carries no error to feed back)."""
        settings = update.plan.compression
        if settings is None:
            raise UpdateRefused("compression_failed: the round publishes no vote words, which a masked sign vote needs")
        try:
            levels = round_vote_levels(update.require_delta(), settings, len(update.plan.participants))
        except CompressionError as error:
            raise UpdateRefused(f"compression_failed: {error}") from error
        update.compressed, update.compression = levels, settings
        return update


def packed_payload(data: npt.NDArray[np.uint8]) -> Payload:
    """Packed bytes as the wire's ``uint8`` payload, in chunks."""

    def chunks() -> Iterator[tuple[int, npt.NDArray[np.generic]]]:
        for offset in range(0, data.size, CHUNK_BYTES):
            yield offset, data[offset : offset + CHUNK_BYTES]

    return Payload("uint8", chunks, sha256_digest(data.tobytes()))
