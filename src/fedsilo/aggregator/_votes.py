"""Masked sign-vote rounds on the hub: the round's vote words, and the tally behind the masks.

A job with ``strategy sign_vote`` under masked aggregation sends no update, only each
coordinate's vote level ``sign(u) + 1`` (``fedsilo.compression.vote_levels``), masked in
words of ``vote_word_bits(n)`` bits for the round's ``n`` participants and packed end to
end. The round publishes ``fedsilo.compression.vote_settings`` for that (the
coordinator's ``CompressionPlanner`` returns it with ``vote_reason``, so the silos sign it
and admission holds them to it); ``VoteAggregation`` unmasks the sum like any compressed masked round and
reads it as the tally, range-checked by ``vote_tally``. A tally out of range voids the
round (``result_problem``) and the model stays; otherwise the coordinator hands the
tally to the strategy (``SignVote.aggregate_tally``). docs/robustness.md says what the
check can and cannot see.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fedsilo.compression import VoteRangeError, masked_payload_size, vote_tally
from fedsilo.protocol import RoundCompression

from ._aggregation import FloatSum, RoundSum
from ._compressed import CompressedMaskedAggregation


def vote_reason(settings: RoundCompression, model_length: int) -> str:
    """The round summary's sentence for a vote round's packing."""
    payload = masked_payload_size(settings, model_length)
    return (
        f"sign votes: {settings.bits}-bit levels in {settings.word_bits}-bit words ({payload} bytes per silo, "
        "fixed by strategy sign_vote)"
    )


class VoteAggregation(CompressedMaskedAggregation):
    """Secure aggregation of one round's vote levels; its result is the range-checked tally."""

    _tally: npt.NDArray[np.int64] | None = None
    _problem: str | None = None

    def result(self) -> RoundSum:
        """The tally per coordinate (zeros when out of range: the round is void) and the counted silos' signed weight."""
        counted = len(self.server.counted)
        try:
            self._tally = vote_tally(self.server.unmasked_words(), counted, self.settings.word_bits)
        except VoteRangeError as error:
            self._problem = str(error)
            self._tally = np.zeros(self.model_length, dtype=np.int64)
        return FloatSum(self._tally.astype(np.float64), self._weight)

    def result_problem(self) -> str | None:
        return self._problem

    def tally(self) -> npt.NDArray[np.int64] | None:
        assert self._tally is not None, "result() first"
        return None if self._problem is not None else self._tally
