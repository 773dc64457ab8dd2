"""Sign votes: each silo's update as one 2-bit level per coordinate, and the hub's checked tally.

Sign voting (signSGD with majority vote, Bernstein et al., ICLR 2019) needs only each
update's signs, and a sum of signs is exactly what masking gives the hub: each silo encodes
``sign(u_j) + 1`` (0, 1 or 2) per coordinate, the masked sum of ``n`` silos' levels is
``tally_j + n`` with ``tally_j`` in ``[-n, n]``, and the words need ``2 + ceil(log2 n)`` bits
(``sum_word_bits(2, n)``), packed end to end on the wire instead of 32-bit fixed-point words.

What the hub verifies on the unmasked sum, whatever a silo sends (``vote_tally``): every
coordinate's level sum is at most ``2n`` (read mod ``2^m``, ``m`` the word width, at
least ``2n + 2``), i.e. the tally lies in the range ``n`` honest voters can produce; a sum
outside it raises ``VoteRangeError`` naming the coordinate, and the round is not applied.
What it cannot verify: that each silo's own contribution was 0, 1 or 2. A silo that
writes another value into its masked word (a modified sidecar) is caught only when its
value pushes the sum out of range, which depends on the honest votes it cannot see; a
contribution that keeps the sum in range moves that coordinate's tally by more than one
vote undetected. The model's step is bounded whatever happens: the strategy moves each
coordinate by exactly ``-step``, 0 or ``+step`` (``fedsilo.strategies.SignVote``).
docs/robustness.md states both. Called by the sign-vote strategy (plain mode: the same
encoding, summed in the clear) and by masked-vote tests and benchmarks.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from fedsilo.protocol import RoundCompression

from ._packing import low_bits, pack_words, unpack_words
from ._quantize import MAX_WORD_BITS, CompressionError, sum_word_bits

#: Bits of one silo's vote level before summing: 0 (-1), 1 (abstain: a zero coordinate), 2 (+1).
VOTE_BITS: Final = 2


class VoteRangeError(CompressionError):
    """An unmasked sum of vote levels that ``n`` honest voters cannot produce: some vector was tampered with."""


def vote_levels(update: npt.NDArray[np.floating]) -> npt.NDArray[np.uint32]:
    """``sign(u) + 1`` per coordinate of ``update``: the levels a silo masks and sends.

    Raises:
        CompressionError: the update holds NaN (its sign is no vote).
    """
    values = np.asarray(update)
    if np.isnan(values).any():
        raise CompressionError("the update holds NaN values, which have no sign to vote with")
    return (np.sign(values).astype(np.int64) + 1).astype(np.uint32)


def vote_word_bits(voters: int) -> int:
    """Width of the masked sum's words for ``voters`` silos' vote levels."""
    return sum_word_bits(VOTE_BITS, voters)


def vote_settings(voters: int, value_range: float) -> RoundCompression:
    """A masked vote round's published words: 2-bit levels summed in ``vote_word_bits(voters)`` bits, every coordinate.

    The hub publishes these for a masked ``sign_vote`` round and each sidecar holds the round
    to them (``round_vote_levels``). ``value_range`` is carried only because every
    ``RoundCompression`` has one (the job's clip range); a vote uses no range.
    """
    return RoundCompression(bits=VOTE_BITS, word_bits=vote_word_bits(voters), value_range=value_range, weight_scale=1)


def round_vote_levels(
    update: npt.NDArray[np.floating], settings: RoundCompression, voters: int
) -> npt.NDArray[np.uint32]:
    """A silo's levels for a masked vote round of ``voters`` participants, once the round's words are the vote's.

    Raises:
        CompressionError: the round publishes other words than ``vote_settings(voters)``
            (too narrow a sum would wrap the tally), or the update holds NaN.
    """
    expected = vote_settings(voters, settings.value_range)
    if settings != expected:
        raise CompressionError(
            f"the round publishes {settings.bits}-bit levels in {settings.word_bits}-bit words over "
            f"{settings.subset_size or 'all'} coordinates; a sign vote of {voters} silos sends {VOTE_BITS}-bit "
            f"levels in {expected.word_bits}-bit words over all coordinates"
        )
    return vote_levels(update)


def pack_votes(masked: npt.NDArray[np.uint32], voters: int) -> npt.NDArray[np.uint8]:
    """One silo's masked vote words on the wire: their low ``vote_word_bits(voters)`` bits, packed."""
    width = vote_word_bits(voters)
    return pack_words(masked & low_bits(width), width)


def unpack_votes(data: npt.NDArray[np.uint8], voters: int, count: int) -> npt.NDArray[np.uint32]:
    """``count`` masked vote words from the wire; ``CompressionError`` when the byte count does not fit."""
    return unpack_words(data, vote_word_bits(voters), count)


def vote_tally(
    total: npt.NDArray[np.unsignedinteger], voters: int, word_bits: int | None = None
) -> npt.NDArray[np.int64]:
    """The per-coordinate tally (``+1`` votes minus ``-1`` votes) from the unmasked sum of ``voters`` silos' levels.

    ``total`` is read mod ``2^word_bits``, the arithmetic the masks cancel in: by default
    ``vote_word_bits(voters)``; a masked round whose words were sized for more silos than
    it counted (some dropped out) passes the width its silos packed at, so the range check
    reads every bit they sent.

    Raises:
        VoteRangeError: a coordinate's level sum is above ``2 x voters``, which no ``voters``
            honest silos can send; the message names the first such coordinate.
        CompressionError: ``voters`` is below 1, or ``word_bits`` is narrower than their sum needs.
    """
    needed = vote_word_bits(voters)
    width = needed if word_bits is None else word_bits
    if not needed <= width <= MAX_WORD_BITS:
        raise CompressionError(f"{voters} voters' levels need {needed}- to {MAX_WORD_BITS}-bit words, not {width}")
    words = np.asarray(total).astype(np.uint32) & low_bits(width)
    outside = np.flatnonzero(words > 2 * voters)
    if outside.size:
        first = int(outside[0])
        raise VoteRangeError(
            f"the vote sum of coordinate {first} is {int(words[first])}, above {2 * voters}, the most {voters} "
            f"honest voters can send ({outside.size} coordinate(s) out of range): a silo sent levels other than "
            "0, 1 or 2; the round is not applied"
        )
    return words.astype(np.int64) - voters
