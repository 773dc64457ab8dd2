"""A trainer factory whose DP-SGD noise is replayable: for tests that compare two runs of a DP job bit for bit.

Real trainers draw DP-SGD noise from the operating system (``_torch_client``: a seed the
hub could derive would let it subtract the noise). A test that kills a DP job's hub and
checks that the resumed job ends with the same model as an uninterrupted one needs both
runs to draw the same noise, so this factory seeds it from the job's seed, the round and
the silo. Use it only in tests: with it the noise protects nothing.

Name it in a manifest as ``model: {factory: "fedsilo_testing.replayable:make_client"}``;
the model is the built-in MLP with the job's hidden sizes.
"""

from __future__ import annotations

import numpy as np

import fedsilo.trainer._torch_client as torch_client
from fedsilo.api import BuiltinModel, FederatedJobSpec, ModelSpec
from fedsilo.datasets import SiloData
from fedsilo.protocol import Weights
from fedsilo.trainer import EvaluateConfig, EvaluateResult, FitConfig, FitResult, TrainerClient, build_client

FACTORY = "fedsilo_testing.replayable:make_client"


class _SeededBits:
    """Stands in for ``secrets`` in the trainer: ``randbits`` returns the seed the current fit set."""

    def __init__(self) -> None:
        self.seed = 0

    def randbits(self, bits: int) -> int:
        return self.seed & ((1 << bits) - 1)


_BITS = _SeededBits()


class ReplayableClient:
    """The built-in client, with each fit's DP noise seeded from (job seed, round, silo)."""

    def __init__(self, spec: FederatedJobSpec, data: SiloData) -> None:
        builtin = spec.model_copy(
            update={"model": ModelSpec(builtin=BuiltinModel.MLP, hidden_sizes=spec.model.hidden_sizes)}
        )
        self._client = build_client(builtin, data)
        self._silo = data.silo_index or 0
        self._seed = spec.seed

    def get_weights(self) -> Weights:
        """The wrapped client's weights."""
        return self._client.get_weights()

    def set_weights(self, weights: Weights) -> None:
        """Set the wrapped client's weights."""
        self._client.set_weights(weights)

    def fit(self, config: FitConfig) -> FitResult:
        """Train, with this round's noise seed in place of the OS's."""
        state = np.random.SeedSequence([self._seed, config.round, self._silo]).generate_state(1, np.uint64)
        _BITS.seed = int(state[0])
        return self._client.fit(config)

    def evaluate(self, config: EvaluateConfig) -> EvaluateResult:
        """The wrapped client's evaluation."""
        return self._client.evaluate(config)


def make_client(spec: FederatedJobSpec, data: SiloData) -> TrainerClient:
    """The trainer factory: replayable DP noise (see the module's warning)."""
    setattr(torch_client, "secrets", _BITS)  # noqa: B010 - replacing the module the trainer draws its seed from
    return ReplayableClient(spec, data)
