"""Choosing the strategy a job names: called once per job by the local runner and the hub."""

from __future__ import annotations

from fedsilo.api import FederatedJobSpec, StrategyName

from ._centered_clipping import CenteredClipping
from ._fedadam import FedAdam
from ._fedavg import FedAvg
from ._fedprox import FedProx
from ._median import Median
from ._multikrum import MultiKrum
from ._sign_vote import SignVote
from ._strategy import Strategy
from ._trimmed_mean import TrimmedMean

_STRATEGIES: dict[StrategyName, type[Strategy]] = {
    StrategyName.FEDAVG: FedAvg,
    StrategyName.FEDPROX: FedProx,
    StrategyName.FEDADAM: FedAdam,
    StrategyName.MEDIAN: Median,
    StrategyName.TRIMMED_MEAN: TrimmedMean,
    StrategyName.MULTIKRUM: MultiKrum,
    StrategyName.CENTERED_CLIPPING: CenteredClipping,
    StrategyName.SIGN_VOTE: SignVote,
}


def make_strategy(spec: FederatedJobSpec) -> Strategy:
    """A fresh strategy ``spec.strategy.name`` for this job.

    It takes the whole job spec rather than ``spec.strategy`` alone because the round
    configuration also needs ``spec.training`` and ``spec.seed``.
    """
    return _STRATEGIES[spec.strategy.name](spec)
