"""FedProx (Li et al., MLSys 2020): FedAvg on the server, a proximal term on the silos.

The proximal term ``mu/2 * ||w - w_global||^2`` keeps each silo's local model near the
global one, which steadies training when silos' data differ. The server step is FedAvg's.
"""

from __future__ import annotations

from dataclasses import replace

from ._config import FitConfig
from ._fedavg import FedAvg


class FedProx(FedAvg):
    """Asks every silo to add ``mu/2 * ||w - w_global||^2`` to its local loss."""

    def configure_round(self, round_number: int) -> FitConfig:
        """FedAvg's round configuration with ``proximal_mu`` set from ``spec.strategy``."""
        return replace(super().configure_round(round_number), proximal_mu=self.spec.strategy.proximal_mu)
