"""The centralized baseline every run is compared with."""

from ._centralized import BaselineResult as BaselineResult
from ._centralized import train_centralized as train_centralized

__all__ = ["BaselineResult", "train_centralized"]
