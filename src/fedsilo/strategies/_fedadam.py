"""FedAdam (Reddi et al., ICLR 2021, "Adaptive Federated Optimization").

The mean update ``d`` is a pseudo-gradient for Adam on the server:
``m = b1 m + (1 - b1) d``, ``v = b2 v + (1 - b2) d^2``, ``x = x + eta m / (sqrt(v) + tau)``,
with ``m`` and ``v`` starting at zero and no bias correction, as in the paper's Algorithm 2.
"""

from __future__ import annotations

import numpy as np

from fedsilo.api import FederatedJobSpec
from fedsilo.protocol import Weights

from ._strategy import Strategy, check_update


class FedAdam(Strategy):
    """Adam on the server over the sample-weighted mean update; keeps its moments across rounds."""

    def __init__(self, spec: FederatedJobSpec) -> None:
        super().__init__(spec)
        self._m: Weights = {}
        self._v: Weights = {}

    def aggregate(self, global_weights: Weights, mean_update: Weights) -> Weights:
        """One server Adam step with ``eta = server_learning_rate``."""
        check_update(global_weights, mean_update)
        s = self.spec.strategy
        out: Weights = {}
        for name, value in global_weights.items():
            delta = mean_update[name].astype(np.float32)
            m = s.beta1 * self._m.get(name, np.zeros_like(delta)) + (1 - s.beta1) * delta
            v = s.beta2 * self._v.get(name, np.zeros_like(delta)) + (1 - s.beta2) * delta * delta
            self._m[name], self._v[name] = m.astype(np.float32), v.astype(np.float32)
            out[name] = (value + s.server_learning_rate * self._m[name] / (np.sqrt(self._v[name]) + s.tau)).astype(
                np.float32
            )
        return out
