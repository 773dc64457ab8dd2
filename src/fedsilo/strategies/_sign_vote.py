"""Sign voting (signSGD with majority vote, Bernstein et al., ICLR 2019): a step of fixed size per coordinate.

Each silo votes with the sign of each coordinate of its update; the next model moves every
coordinate by ``signStepSize`` in the direction of the majority (not at all on a tie).
Whatever any silo sends, the model moves by exactly ``-step``, 0 or ``+step`` per coordinate
and round, and one silo changes a coordinate's tally by at most one vote (two, from -1 to
+1) when it votes honestly-encoded levels. The tally is a plain sum of signs, which is why
the rule works under masking: ``fedsilo.compression.vote_levels`` encodes the signs as
levels that masked aggregation sums, and ``vote_tally`` checks that sum's range on the hub
(what that check can and cannot see is in that module and docs/robustness.md). Like the
robust rules, the vote ignores sample counts: each silo has one vote.

Called by the hub's coordinator (plain mode: ``aggregate_updates`` with every admitted
update; masked mode: ``aggregate_tally`` with the unmasked, range-checked tally of
``aggregator/_votes.py``) and by the in-process robustness simulation
(``fedsilo_testing.robust_simulation``), which also feeds it masked tallies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fedsilo.protocol import TensorLayout, Weights

from ._strategy import Strategy, check_update

Tally = npt.NDArray[np.int64]


def plain_tally(updates: Sequence[npt.NDArray[np.floating]]) -> Tally:
    """Per coordinate, the number of positive signs minus the number of negative ones."""
    if not updates:
        raise ValueError("a vote needs at least one update")
    tally = np.zeros(np.shape(updates[0]), dtype=np.int64)
    for update in updates:
        tally += np.sign(update).astype(np.int64)
    return tally


class SignVote(Strategy):
    """``global + signStepSize * sign(tally)``: the majority of the silos' signs, one vote each."""

    def aggregate(self, global_weights: Weights, mean_update: Weights) -> Weights:
        """Refuse: a mean of updates is not a vote (a large update would outweigh many small ones).

        Raises:
            TypeError: always; the hub calls ``aggregate_updates`` (plain) or ``aggregate_tally``.
        """
        raise TypeError("strategy sign_vote steps from the silos' votes, not from the mean of their updates")

    def aggregate_updates(self, global_weights: Weights, updates: Sequence[Weights]) -> Weights:
        """The next model from every admitted update (plain mode): their signs, tallied in the clear.

        Raises:
            ValueError: there is no update, or one lacks a tensor, reshapes one, or holds NaN.
        """
        if not updates:
            raise ValueError("strategy sign_vote got no update to tally")
        for update in updates:
            check_update(global_weights, update)
        layout = TensorLayout.of(global_weights)
        return self.aggregate_tally(global_weights, plain_tally([layout.flatten(u) for u in updates]))

    def aggregate_tally(self, global_weights: Weights, tally: Tally) -> Weights:
        """``global + step * sign(tally)``, ``tally`` flattened in the model's tensor order.

        Raises:
            ValueError: ``tally`` does not have one entry per coordinate of the model.
        """
        layout = TensorLayout.of(global_weights)
        flat = layout.flatten(global_weights).astype(np.float64)
        if tally.shape != flat.shape:
            raise ValueError(f"the tally has shape {tally.shape}, the model has {flat.size} coordinates")
        moved = flat + self.spec.strategy.sign_step * np.sign(tally)
        return layout.unflatten(moved.astype(np.float32))
