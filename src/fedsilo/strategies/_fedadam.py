"""FedAdam (Reddi et al., ICLR 2021, "Adaptive Federated Optimization").

The mean update ``d`` is a pseudo-gradient for Adam on the server:
``m = b1 m + (1 - b1) d``, ``v = b2 v + (1 - b2) d^2``, ``x = x + eta m / (sqrt(v) + tau)``,
with ``m`` and ``v`` starting at zero and no bias correction, as in the paper's Algorithm 2.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from fedsilo.api import FederatedJobSpec
from fedsilo.protocol import Weights

from ._strategy import Strategy, check_update


class FedAdam(Strategy):
    """Adam on the server over the sample-weighted mean update; keeps its moments across rounds."""

    def __init__(self, spec: FederatedJobSpec) -> None:
        super().__init__(spec)
        self._m: Weights = {}
        self._v: Weights = {}

    def state(self) -> dict[str, npt.NDArray[np.floating]]:
        """The moments, as ``m/<tensor>`` and ``v/<tensor>``."""
        return {f"m/{k}": v for k, v in self._m.items()} | {f"v/{k}": v for k, v in self._v.items()}

    def restore(self, state: Mapping[str, npt.NDArray[np.floating]]) -> None:
        """Moments from a checkpoint; ``ValueError`` for a name that is not ``m/`` or ``v/`` or a pair that differs."""
        m: Weights = {}
        v: Weights = {}
        for name, value in state.items():
            kind, _, tensor = name.partition("/")
            if kind not in ("m", "v") or not tensor:
                raise ValueError(f"FedAdam state holds {name!r}; expected m/<tensor> or v/<tensor>")
            (m if kind == "m" else v)[tensor] = np.asarray(value, dtype=np.float32)
        if m.keys() != v.keys() or any(m[k].shape != v[k].shape for k in m):
            raise ValueError("FedAdam state: the first and second moments name different tensors or shapes")
        self._m, self._v = m, v

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
