"""FedProx (Li et al., MLSys 2020): FedAvg on the server, a proximal term on the silos."""

from __future__ import annotations

from dataclasses import replace

from fedsilo.trainer import FitConfig

from ._fedavg import FedAvg


class FedProx(FedAvg):
    """Asks every silo to add ``mu/2 * ||w - w_global||^2`` to its local loss."""

    def configure_round(self, round_number: int) -> FitConfig:
        return replace(super().configure_round(round_number), proximal_mu=self.spec.strategy.proximal_mu)
