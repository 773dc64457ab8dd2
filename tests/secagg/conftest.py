"""Rounds with real keys and real cryptography, in memory: configurations, inputs, expected sums.

``run_local_round`` (fedsilo.secagg) plays whole rounds; ``ManualRound`` steps one through
the public API by hand, for tests that look at the server between steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from fedsilo.api import RoundNumber, SiloName
from fedsilo.identity import SigningKey, VerifyKey
from fedsilo.secagg import (
    MaskedChunk,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    encode,
    masked_payload_digest,
)

CLIP = 4.0
BITS = 16
Inputs = dict[SiloName, tuple[np.ndarray, int]]


def silo_names(n: int) -> tuple[SiloName, ...]:
    return tuple(SiloName(f"silo-{chr(ord('a') + i)}") for i in range(n))


def make_config(n: int, threshold: int, length: int, chunk: int = 16) -> SecAggConfig:
    return SecAggConfig("job", RoundNumber(3), silo_names(n), threshold, length, BITS, CLIP, chunk_elements=chunk)


def random_inputs(config: SecAggConfig, rng: np.random.Generator) -> Inputs:
    # Values reach beyond the clip range so clipping is exercised too.
    return {
        s: (rng.uniform(-1.5 * CLIP, 1.5 * CLIP, config.vector_length).astype(np.float32), int(rng.integers(1, 500)))
        for s in config.silos
    }


def encoded(config: SecAggConfig, inputs: Inputs, silo: SiloName) -> np.ndarray:
    values, weight = inputs[silo]
    return encode(values, weight, config.clip_range, config.fractional_bits, len(config.silos))


def expected_sum(config: SecAggConfig, inputs: Inputs, survivors: set[SiloName] | frozenset[SiloName]) -> np.ndarray:
    total = np.zeros(config.masked_length, dtype=np.uint32)
    for silo in survivors:
        total += encoded(config, inputs, silo)
    return total


@dataclass
class ManualRound:
    """Clients and a server of one round, stepped by hand through the public API."""

    config: SecAggConfig
    clients: dict[SiloName, SecAggClient]
    server: SecAggServer
    inputs: Inputs
    chunks: dict[SiloName, list[MaskedChunk]] = field(default_factory=dict)

    @classmethod
    def start(cls, config: SecAggConfig, seed: int = 0) -> ManualRound:
        signing = {s: SigningKey.generate() for s in config.silos}
        public: dict[str, VerifyKey] = {s: k.public_key for s, k in signing.items()}
        clients = {s: SecAggClient(config, s, signing[s], public) for s in config.silos}
        inputs = random_inputs(config, np.random.default_rng(seed))
        return cls(config, clients, SecAggServer(config, public), inputs)

    def setup(self) -> None:
        """Rounds 0 and 1 with every silo."""
        for silo, client in self.clients.items():
            self.server.receive_advertise(silo, client.advertise())
        broadcast = self.server.broadcast_keys()
        for silo, client in self.clients.items():
            self.server.receive_shares(silo, client.share_keys(broadcast))
        for silo, delivery in self.server.deliver_shares().items():
            self.clients[silo].receive_shares(delivery)

    def mask(self, silo: SiloName) -> list[MaskedChunk]:
        values, weight = self.inputs[silo]
        self.chunks[silo] = list(self.clients[silo].masked_input(values, weight))
        return self.chunks[silo]

    def send(self, silo: SiloName) -> None:
        chunks = self.chunks.get(silo) or self.mask(silo)
        for chunk in chunks:
            self.server.add_chunk(silo, chunk)
        self.server.finish_input(silo, masked_payload_digest(chunks))

    def finish(self, responders: list[SiloName] | None = None) -> None:
        """Rounds 3 and 4 with every survivor (or only ``responders`` in round 4)."""
        request = self.server.unmask_request()
        for silo in request.survivors:
            self.server.receive_confirmation(silo, self.clients[silo].confirm(request))
        confirmations = self.server.confirmations()
        for silo in responders if responders is not None else request.survivors:
            self.server.receive_unmask(silo, self.clients[silo].unmask(confirmations))


@pytest.fixture
def five() -> ManualRound:
    """Five silos, threshold 3, 101 values in chunks of 16 words."""
    return ManualRound.start(make_config(5, 3, 101))
