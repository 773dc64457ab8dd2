"""Server strategies: FedAvg, FedProx and FedAdam behind one ``Strategy`` interface.

The runner builds one with ``make_strategy`` per job; the hub's coordinator asks it for
each round's ``FitConfig`` and hands it the securely aggregated mean update. Strategies
never see a single silo's update.
"""

from ._config import DpSgdConfig as DpSgdConfig
from ._config import FitConfig as FitConfig
from ._fedadam import FedAdam as FedAdam
from ._fedavg import FedAvg as FedAvg
from ._fedprox import FedProx as FedProx
from ._make import make_strategy as make_strategy
from ._strategy import Strategy as Strategy

__all__ = ["DpSgdConfig", "FedAdam", "FedAvg", "FedProx", "FitConfig", "Strategy", "make_strategy"]
