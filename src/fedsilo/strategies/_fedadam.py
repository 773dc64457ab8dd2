"""FedAdam (Reddi et al., ICLR 2021, "Adaptive Federated Optimization").

The mean update is a pseudo-gradient for Adam on the server:
``m = b1 m + (1 - b1) d``, ``v = b2 v + (1 - b2) d^2``, ``x = x + eta m / (sqrt(v) + tau)``.
"""

from __future__ import annotations

import numpy as np

from fedsilo.api import FederatedJobSpec
from fedsilo.protocol import Weights

from ._strategy import Strategy


class FedAdam(Strategy):
    """Adam on the server over the sample-weighted mean update."""

    def __init__(self, spec: FederatedJobSpec) -> None:
        super().__init__(spec)
        self._m: Weights = {}
        self._v: Weights = {}

    def aggregate(self, global_weights: Weights, mean_update: Weights) -> Weights:
        s = self.spec.strategy
        out: Weights = {}
        for name, value in global_weights.items():
            delta = mean_update[name].astype(np.float32)
            m = self._m.get(name, np.zeros_like(delta))
            v = self._v.get(name, np.zeros_like(delta))
            m = (s.beta1 * m + (1 - s.beta1) * delta).astype(np.float32)
            v = (s.beta2 * v + (1 - s.beta2) * delta * delta).astype(np.float32)
            self._m[name], self._v[name] = m, v
            out[name] = (value + s.server_learning_rate * m / (np.sqrt(v) + s.tau)).astype(np.float32)
        return out
