"""A real in-memory secure-aggregation round: real keys, real messages, no network."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from fedsilo.identity import SigningKey, VerifyKey
from fedsilo.secagg import SecAggClient, SecAggConfig, SecAggServer


@dataclass
class Round:
    """Clients and server of one round, with helpers that run each step."""

    config: SecAggConfig
    signing: dict[str, SigningKey]
    clients: dict[str, SecAggClient]
    server: SecAggServer
    inputs: dict[str, tuple[np.ndarray, int]] = field(default_factory=dict)
    masked: dict[str, np.ndarray] = field(default_factory=dict)

    def advertise(self, silos: list[str]) -> list[str]:
        replies = self.server.advertise({s: self.clients[s].advertise() for s in silos})
        for silo, reply in replies.items():
            self.clients[silo].receive_adverts(reply)
        return sorted(replies)

    def share(self, silos: list[str]) -> list[str]:
        replies = self.server.share_keys({s: self.clients[s].share_keys() for s in silos})
        for silo, reply in replies.items():
            self.clients[silo].receive_shares(reply)
        return sorted(replies)

    def mask(self, silos: list[str], rng: np.random.Generator) -> None:
        size = self.config.vector_length - 1
        for silo in silos:
            values = rng.uniform(-self.config.clip_range, self.config.clip_range, size)
            weight = int(rng.integers(1, 500))
            self.inputs[silo] = (values, weight)
            self.masked[silo] = self.clients[silo].masked_input(values, weight)

    def send(self, silos: list[str]) -> None:
        for silo in silos:
            self.server.add_input(silo, self.masked[silo])

    def unmask(self, responders: list[str]) -> None:
        request = self.server.unmask_request()
        self.server.unmask({s: self.clients[s].unmask(request) for s in responders})


def make_round(
    names: tuple[str, ...], threshold: int, length: int, chunk_words: int = 64, degree: int | None = None
) -> Round:
    signing = {n: SigningKey.generate() for n in names}
    keys: dict[str, VerifyKey] = {n: k.public_key for n, k in signing.items()}
    config = SecAggConfig("job", 1, names, threshold, length, 16, 4.0, chunk_words=chunk_words, degree=degree)
    # Every party builds its own config from the same public facts, as the sidecars and the hub do.
    clients = {
        n: SecAggClient(
            SecAggConfig("job", 1, names, threshold, length, 16, 4.0, chunk_words=chunk_words, degree=degree),
            n,
            signing[n],
            keys,
        )
        for n in names
    }
    return Round(config, signing, clients, SecAggServer(config, keys))


@pytest.fixture
def five() -> Round:
    return make_round(("a", "b", "c", "d", "e"), threshold=3, length=301)
