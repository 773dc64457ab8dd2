"""Per-silo anomaly scores over rounds, which the update policy may deny on.

After each round the hub compares every admitted silo with the others of that round, one
signal at a time, in robust standard deviations above the round's median (median and MAD,
so the outliers being looked for do not hide themselves by inflating the spread):

- ``distance`` (plain mode only: the hub holds the updates): the L2 distance of the silo's
  update to the step the model took;
- ``l2_norm`` (every mode): the norm the silo signed for its update. In masked mode this is
  all the hub has: a silo that lies in its claim and in its vector alike is not seen here
  (docs/robustness.md says what masked mode can and cannot detect).

The round's score of a silo is its largest signal; its score over rounds decays by half
each round and takes half of the new one, so one odd round fades and a silo that keeps
sending outliers keeps a high score. A silo the round did not observe (absent, or denied)
only decays: a silo denied for its score comes back on probation once the score has faded,
and is denied again if it sends another outlier. The policy sees the score before the
round (``silo.anomaly_score``) and denies the update (``update_anomalous``) when it is
above the job's ``spec.policy.maxAnomalyScore``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Final

import numpy as np

# MAD times this estimates the standard deviation of normally distributed values.
_MAD_TO_SIGMA: Final = 1.4826
# The spread a signal is measured in is at least this share of its median: honest silos that
# happen to agree closely must not make a small difference look like a huge one.
_RELATIVE_FLOOR: Final = 0.05
_ABSOLUTE_FLOOR: Final = 1e-12
# With fewer silos a round has no majority to tell the odd one out by.
MIN_SILOS_COMPARED: Final = 3
# The weight of the past in a silo's score: each round halves what came before.
DECAY: Final = 0.5


def robust_scores(values: Mapping[str, float]) -> dict[str, float]:
    """Each value's distance above the median, in robust standard deviations (0 at or below it).

    Empty when fewer than :data:`MIN_SILOS_COMPARED` values are given.
    """
    if len(values) < MIN_SILOS_COMPARED:
        return {}
    array = np.fromiter(values.values(), dtype=np.float64, count=len(values))
    median = float(np.median(array))
    spread = float(np.median(np.abs(array - median))) * _MAD_TO_SIGMA
    scale = max(spread, _RELATIVE_FLOOR * abs(median), _ABSOLUTE_FLOOR)
    return {silo: max(0.0, (value - median) / scale) for silo, value in values.items()}


class AnomalyScores:
    """Every silo's score over the rounds of one job; read by admission, updated when a round closes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scores: dict[str, float] = {}

    def score(self, silo: str) -> float | None:
        """The silo's score before the open round; None until a round observed it."""
        with self._lock:
            return self._scores.get(silo)

    def observe(self, signals: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        """Fold one closed round's signals (name -> silo -> value) in; the round's score of each silo.

        Silos with a score that the round did not observe decay.
        """
        round_scores: dict[str, float] = {}
        for values in signals.values():
            for silo, score in robust_scores(values).items():
                round_scores[silo] = max(round_scores.get(silo, 0.0), score)
        with self._lock:
            for silo in self._scores.keys() - round_scores.keys():
                self._scores[silo] *= DECAY
            for silo, score in round_scores.items():
                self._scores[silo] = DECAY * self._scores.get(silo, 0.0) + (1.0 - DECAY) * score
        return round_scores

    def restore(self, scores: Mapping[str, float]) -> None:
        """Take the scores a resumed job had when its checkpoint was written."""
        with self._lock:
            self._scores = dict(scores)

    def snapshot(self) -> dict[str, float]:
        """Every observed silo's current score."""
        with self._lock:
            return dict(self._scores)
