"""Record-level DP-SGD for the trainer (Opacus under the hood).

A subpackage of its own because it imports torch and Opacus: the trainer imports it, the
sidecar and the hub, which only account, never do.
"""

from ._opacus import DpSgdTraining as DpSgdTraining
from ._opacus import make_dp_compatible as make_dp_compatible
from ._opacus import make_dp_sgd as make_dp_sgd

__all__ = ["DpSgdTraining", "make_dp_compatible", "make_dp_sgd"]
