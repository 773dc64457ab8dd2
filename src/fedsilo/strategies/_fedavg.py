"""FedAvg (McMahan et al., AISTATS 2017): the sample-weighted mean of the local models.

With the mean update ``d`` (the sample-weighted mean of ``local - global``), the next
model is ``global + server_lr * d``; a server learning rate of 1 gives exactly the
sample-weighted mean of the local models.
"""

from __future__ import annotations

import numpy as np

from fedsilo.protocol import Weights

from ._strategy import Strategy, check_update


class FedAvg(Strategy):
    """``global + server_lr * mean_update``; a server learning rate of 1 is plain FedAvg."""

    def aggregate(self, global_weights: Weights, mean_update: Weights) -> Weights:
        """The global model moved by ``server_learning_rate`` times the mean update."""
        check_update(global_weights, mean_update)
        rate = np.float32(self.spec.strategy.server_learning_rate)
        # Into one float32 array per tensor: (value + rate * update).astype(...) made three, 1.1 GiB at
        # 100M parameters at the hub's peak.
        stepped = {}
        for name, value in global_weights.items():
            tensor = np.multiply(mean_update[name], rate, dtype=np.float32)
            tensor += value
            stepped[name] = tensor
        return stepped
