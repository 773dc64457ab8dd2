"""Server strategies behind one ``Strategy`` interface: FedAvg, FedProx, FedAdam and robust rules.

The runner builds one with ``make_strategy`` per job; the hub's coordinator asks it for
each round's ``FitConfig`` and hands it the securely aggregated mean update. The
Byzantine-robust rules (``RobustStrategy``: median, trimmed mean, Multi-Krum, centered
clipping) and the sign vote (``SignVote``) get the individual updates instead, which the hub
holds only in plain mode.
"""

from ._centered_clipping import CenteredClipping as CenteredClipping
from ._config import DpSgdConfig as DpSgdConfig
from ._config import FitConfig as FitConfig
from ._fedadam import FedAdam as FedAdam
from ._fedavg import FedAvg as FedAvg
from ._fedprox import FedProx as FedProx
from ._make import make_strategy as make_strategy
from ._median import Median as Median
from ._multikrum import MultiKrum as MultiKrum
from ._robust import RobustStrategy as RobustStrategy
from ._sign_vote import SignVote as SignVote
from ._sign_vote import plain_tally as plain_tally
from ._strategy import Strategy as Strategy
from ._trimmed_mean import TrimmedMean as TrimmedMean

__all__ = [
    "CenteredClipping",
    "DpSgdConfig",
    "FedAdam",
    "FedAvg",
    "FedProx",
    "FitConfig",
    "Median",
    "MultiKrum",
    "RobustStrategy",
    "SignVote",
    "Strategy",
    "TrimmedMean",
    "make_strategy",
    "plain_tally",
]
