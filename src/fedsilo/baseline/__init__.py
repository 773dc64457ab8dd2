"""The centralized baseline every run is compared with.

``fedsilo run`` calls ``train_centralized`` after a job to print "federated vs
centralized": the same model and optimizer on all silos' records pooled.
"""

from ._centralized import MAX_EPOCHS as MAX_EPOCHS
from ._centralized import BaselineResult as BaselineResult
from ._centralized import train_centralized as train_centralized

__all__ = ["MAX_EPOCHS", "BaselineResult", "train_centralized"]
