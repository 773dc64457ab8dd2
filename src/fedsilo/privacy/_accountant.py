"""Privacy accounting: composing mechanisms and reading off epsilon, through Google's ``dp_accounting``.

The sidecar asks for the epsilon of one round, the ledger replays a silo's whole event
history (one job, or every job of the silo's lifetime) into one accountant, and the
operator or sidecar calibrates a noise multiplier to a job's ``targetEpsilon``. All of them
go through ``Accountant``; nothing in fedsilo adds epsilons up, because composition of
(epsilon, delta) guarantees is much tighter when done on the accountant's state (Renyi
divergences or privacy loss distributions) than by summing the per-round epsilons.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal, get_args

from fedsilo.api import PrivacySpec

from ._events import DpSgdEvent, GaussianEvent, Mechanism

if TYPE_CHECKING:
    import dp_accounting

AccountantKind = Literal["rdp", "pld"]

# dp_accounting logs (through absl) every RDP order it cannot evaluate and drops it, which
# only loosens the bound: hundreds of lines per calibration, none of them actionable.
logging.getLogger("absl").setLevel(logging.ERROR)

# The PLD's loss grid: dp_accounting's default, which the test suite holds to within 0.5%
# of Opacus' PRV accountant; a coarser grid overstates epsilon (3.14 instead of 2.38 at 1e-2
# for 60 MNIST epochs).
_PLD_DISCRETIZATION = 1e-4


def _backend(kind: AccountantKind) -> dp_accounting.PrivacyAccountant:
    """A fresh accountant of ``kind``.

    dp_accounting is imported here, not with the module: it pulls in scipy's signal, stats and
    optimize packages, 0.8 of the 1.4 CPU-seconds it takes a sidecar (and every command that
    reads a ledger) to start, and most processes never compose a mechanism.
    """
    from dp_accounting import NeighboringRelation, pld, rdp

    neighbors = NeighboringRelation.ADD_OR_REMOVE_ONE
    if kind == "pld":
        return pld.PLDAccountant(neighboring_relation=neighbors, value_discretization_interval=_PLD_DISCRETIZATION)
    return rdp.RdpAccountant(neighboring_relation=neighbors)


# The search range of calibrate_noise. At 0.3 a single Gaussian release already costs
# epsilon ~16 at delta 1e-5, and a PLD's grid grows with 1/sigma^2 (minutes below 0.2).
_MIN_NOISE = 0.3
_MAX_NOISE = 1000.0


def _check_delta(delta: float) -> None:
    if not (math.isfinite(delta) and 0 < delta < 1):
        raise ValueError(f"delta must be in (0, 1), not {delta!r}")


class Accountant:
    """Composes mechanisms and answers an epsilon that provably holds for a given delta.

    ``kind`` selects the accounting method: ``"rdp"`` (Renyi DP, Mironov 2017; the bound
    TensorFlow Privacy and Opacus' RDPAccountant report) or ``"pld"`` (privacy loss distributions, Koskela
    et al. 2020; tight up to discretization, with a pessimistic rounding so it never
    understates epsilon). Neighbouring data sets differ by adding or removing one record
    (record mode) or one silo (silo mode).
    """

    def __init__(self, kind: AccountantKind = "rdp") -> None:
        if kind not in get_args(AccountantKind):
            raise ValueError(f"unknown accountant {kind!r}; expected one of {', '.join(get_args(AccountantKind))}")
        self.kind: AccountantKind = kind
        # Composition is commutative, so identical mechanisms are grouped and composed once
        # with their total count: exact, and it keeps a PLD replay as fast for round 500 as
        # for round 1 (building one mechanism's PLD is the expensive part).
        self._counts: Counter[tuple[float, float]] = Counter()

    def compose(self, events: Iterable[Mechanism]) -> None:
        """Add ``events`` to what this accountant has composed so far."""
        for event in events:
            if isinstance(event, DpSgdEvent):
                self._counts[(event.noise_multiplier, event.sample_rate)] += event.steps
            elif isinstance(event, GaussianEvent):
                # A Gaussian release is a DP-SGD step that samples everyone.
                self._counts[(event.noise_multiplier, 1.0)] += event.count
            else:
                raise TypeError(f"not a mechanism: {event!r}")

    def epsilon(self, delta: float) -> float:
        """The epsilon of everything composed so far at ``delta`` (0 before any event; may be ``inf``)."""
        _check_delta(delta)
        if not self._counts:
            return 0.0
        from dp_accounting import GaussianDpEvent, PoissonSampledDpEvent, SelfComposedDpEvent

        backend = _backend(self.kind)
        for (noise_multiplier, sample_rate), count in sorted(self._counts.items()):
            gaussian = GaussianDpEvent(noise_multiplier)
            step = gaussian if sample_rate == 1.0 else PoissonSampledDpEvent(sample_rate, gaussian)
            backend.compose(SelfComposedDpEvent(step, count))
        return float(backend.get_epsilon(delta))


def epsilon_for(events: Iterable[Mechanism], delta: float, accountant: AccountantKind = "rdp") -> float:
    """The epsilon at ``delta`` of ``events`` composed together."""
    composed = Accountant(accountant)
    composed.compose(events)
    return composed.epsilon(delta)


def calibrate_noise(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: AccountantKind = "rdp",
    *,
    tolerance: float = 1e-3,
) -> float:
    """The smallest noise multiplier, to a relative ``tolerance``, whose mechanism spends at most ``target_epsilon``.

    The mechanism is ``steps`` Poisson-subsampled Gaussian steps at ``sample_rate``
    (``sample_rate=1`` is ``steps`` plain Gaussian releases, as in silo mode). Epsilon
    falls as the noise grows, so a bisection on a log scale finds the boundary: the result
    sigma has epsilon <= target, and sigma / (1 + tolerance) has epsilon > target unless
    sigma is the floor of the search range (0.3), returned when even that little noise meets
    the target. ``ValueError`` if a noise multiplier of 1000 still spends too much.
    """
    if not (math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ValueError(f"target_epsilon must be a positive finite number, not {target_epsilon!r}")
    if not (0 < tolerance < 1):
        raise ValueError(f"tolerance must be in (0, 1), not {tolerance!r}")
    _check_delta(delta)
    # Validates sample_rate and steps once, before any accounting.
    DpSgdEvent(1.0, sample_rate, steps)

    def spends_for(kind: AccountantKind) -> Callable[[float], float]:
        return lambda sigma: epsilon_for([DpSgdEvent(sigma, sample_rate, steps)], delta, kind)

    # RDP answers in milliseconds and overstates epsilon a little, so its sigma is a close
    # starting point for the slower PLD search, which then only evaluates nearby sigmas.
    rdp_sigma = _boundary(spends_for("rdp"), target_epsilon, 1.0, 2.0, tolerance)
    if accountant == "rdp":
        return rdp_sigma
    return _boundary(spends_for(accountant), target_epsilon, rdp_sigma, 1.25, tolerance)


def _boundary(spends: Callable[[float], float], target: float, start: float, factor: float, tolerance: float) -> float:
    """The smallest sigma in the search range, to ``tolerance``, with ``spends(sigma) <= target``."""
    low = high = min(max(start, _MIN_NOISE), _MAX_NOISE)
    if spends(high) <= target:
        # Enough noise at the start: step down until it is too little.
        while True:
            if low <= _MIN_NOISE:
                return _MIN_NOISE
            low = max(low / factor, _MIN_NOISE)
            if spends(low) > target:
                break
            high = low
    else:
        # Too little at the start: step up until it is enough.
        while True:
            if high >= _MAX_NOISE:
                raise ValueError(f"epsilon {target} is out of reach even with noise multiplier {_MAX_NOISE}")
            low, high = high, min(high * factor, _MAX_NOISE)
            if spends(high) <= target:
                break
    # Invariant: spends(low) > target >= spends(high); epsilon falls as sigma grows.
    while high > low * (1 + tolerance):
        middle = math.sqrt(low * high)
        if spends(middle) <= target:
            high = middle
        else:
            low = middle
    return high


def resolve_noise_multiplier(privacy: PrivacySpec, sample_rate: float, steps: int) -> float:
    """The noise multiplier a job runs with: the configured one, or one calibrated to ``targetEpsilon``.

    ``sample_rate`` and ``steps`` describe the whole job for one silo: batch / records and
    all rounds' steps in record mode; 1.0 and the number of rounds in silo mode.
    """
    if privacy.noise_multiplier is not None:
        return privacy.noise_multiplier
    if privacy.target_epsilon is None:
        raise ValueError("privacy sets neither noiseMultiplier nor targetEpsilon")
    return calibrate_noise(privacy.target_epsilon, privacy.delta, sample_rate, steps, privacy.accountant)
