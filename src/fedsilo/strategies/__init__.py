"""Server strategies: FedAvg, FedProx and FedAdam behind one ``Strategy`` interface."""

from fedsilo.api import FederatedJobSpec, StrategyName

from ._fedadam import FedAdam as FedAdam
from ._fedavg import FedAvg as FedAvg
from ._fedprox import FedProx as FedProx
from ._strategy import Strategy as Strategy

_STRATEGIES: dict[StrategyName, type[Strategy]] = {
    StrategyName.FEDAVG: FedAvg,
    StrategyName.FEDPROX: FedProx,
    StrategyName.FEDADAM: FedAdam,
}


def make_strategy(spec: FederatedJobSpec) -> Strategy:
    """The strategy ``spec.strategy.name`` for this job."""
    return _STRATEGIES[spec.strategy.name](spec)


__all__ = ["FedAdam", "FedAvg", "FedProx", "Strategy", "make_strategy"]
