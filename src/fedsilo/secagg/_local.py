"""A whole secure-aggregation round in one process: the tests' and benchmarks' driver.

``run_local_round`` plays every silo and the hub with real keys and real cryptography,
passing every message through its byte encoding as the network would, and lets any silo
vanish at any step or be denied by the policy. It is not used in production paths: there
the sidecar and the aggregator carry the same messages over gRPC.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from fedsilo.api import SiloName
from fedsilo.identity import SigningKey, VerifyKey

from ._client import SecAggClient
from ._config import SecAggConfig
from ._errors import SecAggError
from ._messages import (
    Confirmations,
    KeyAdvertisement,
    KeyBroadcast,
    MaskedChunk,
    ShareDelivery,
    ShareKeys,
    SurvivorConfirmation,
    UnmaskRequest,
    UnmaskResponse,
    masked_payload_digest,
)
from ._server import AggregateResult, SecAggServer


class DropPoint(Enum):
    """Where a silo stops answering."""

    BEFORE_ADVERTISE = "before advertise keys"
    AFTER_ADVERTISE = "after advertise keys"
    AFTER_SHARE_KEYS = "after share keys"
    MID_STREAM = "mid-stream"
    AFTER_INPUT = "after its input"
    AFTER_CONFIRM = "after the consistency check"


@dataclass(frozen=True)
class Dropout:
    """A silo that vanishes at ``at``; mid-stream, after sending ``chunks_sent`` chunks."""

    at: DropPoint
    chunks_sent: int = 0


@dataclass(frozen=True)
class Hop:
    """One message on its way: which silo sends or receives it, which way, and its type's name."""

    silo: SiloName
    upstream: bool
    message: str


@dataclass(frozen=True)
class LocalRound:
    """What ``run_local_round`` did.

    ``refusals`` holds, per silo, the error that took it out of the round: the server
    refusing its message, or the silo refusing one of the hub's (a silo that refuses
    stops answering, as a real sidecar would). ``seconds`` is time per step and side;
    ``bytes_up``/``bytes_down`` count each silo's encoded messages.
    """

    result: AggregateResult
    server: SecAggServer
    refusals: Mapping[SiloName, SecAggError]
    seconds: Mapping[str, float]
    bytes_up: Mapping[SiloName, int]
    bytes_down: Mapping[SiloName, int]


Relay = Callable[[Hop, bytes], bytes]
_T = TypeVar("_T")
_M = TypeVar("_M")


class _Driver:
    """Plays the network: carries bytes through the relay, times each side, records refusals."""

    def __init__(self, server: SecAggServer, relay: Relay | None) -> None:
        self.server = server
        self.relay = relay
        self.gone: set[SiloName] = set()
        self.refusals: dict[SiloName, SecAggError] = {}
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.up: defaultdict[SiloName, int] = defaultdict(int)
        self.down: defaultdict[SiloName, int] = defaultdict(int)
        self._running: list[str] = []
        self._since = 0.0

    @contextmanager
    def timed(self, key: str) -> Iterator[None]:
        """Charge the time inside to ``key``; a nested ``timed`` pauses the outer one.

        The client's chunk iterator hands each chunk to the server inside the client's
        own timing, and each side must be charged only its own work.
        """
        self._charge()
        self._running.append(key)
        try:
            yield
        finally:
            self._charge()
            self._running.pop()

    def _charge(self) -> None:
        now = time.perf_counter()
        if self._running:
            self.seconds[self._running[-1]] += now - self._since
        self._since = now

    def carry(self, silo: SiloName, upstream: bool, message: object, data: bytes) -> bytes:
        """``data`` as the other side receives it."""
        if self.relay is not None:
            data = self.relay(Hop(silo, upstream, type(message).__name__), data)
        (self.up if upstream else self.down)[silo] += len(data)
        return data

    def attempt(self, silo: SiloName, key: str, action: Callable[[], _T]) -> _T | None:
        """Run one side's handling of a message; a ``SecAggError`` takes ``silo`` out of the round."""
        if silo in self.gone:
            return None
        with self.timed(key):
            try:
                return action()
            except SecAggError as error:
                self.refusals.setdefault(silo, error)
                self.gone.add(silo)
                return None

    def deliver(
        self, silo: SiloName, key: str, handler: Callable[[_M], _T], parse: Callable[[bytes], _M], data: bytes
    ) -> _T | None:
        """Parse ``data`` and hand it over, as the receiving side of a hop."""
        return self.attempt(silo, key, lambda: handler(parse(data)))


def run_local_round(
    config: SecAggConfig,
    inputs: Mapping[SiloName, tuple[npt.NDArray[np.floating], int]],
    *,
    signing_keys: Mapping[SiloName, SigningKey] | None = None,
    dropouts: Mapping[SiloName, Dropout] | None = None,
    denied: Mapping[SiloName, str] | None = None,
    relay: Relay | None = None,
) -> LocalRound:
    """Run one round over ``config.silos`` with each silo's ``(update, weight)`` from ``inputs``.

    Silos in ``dropouts`` vanish where it says; silos in ``denied`` send their whole input
    and are then excluded with the given reason, as a policy denial would. Every message
    passes through ``relay`` (which may read or alter it) on its way. A step that closes
    with fewer than ``config.threshold`` silos raises ``SecAggAbort``.
    """
    drops = dict(dropouts or {})
    keys = dict(signing_keys or {s: SigningKey.generate() for s in config.silos})
    public: dict[str, VerifyKey] = {s: k.public_key for s, k in keys.items()}
    clients = {s: SecAggClient(config, s, keys[s], public) for s in config.silos}
    server = SecAggServer(config, public)
    net = _Driver(server, relay)

    def leaves(point: DropPoint) -> None:
        net.gone |= {s for s, d in drops.items() if d.at is point}

    # Round 0: advertise keys.
    leaves(DropPoint.BEFORE_ADVERTISE)
    for silo in config.silos:
        advert = net.attempt(silo, "client: advertise keys", clients[silo].advertise)
        if advert is not None:
            data = net.carry(silo, True, advert, advert.to_bytes())
            receive = partial(server.receive_advertise, silo)
            net.deliver(silo, "server: advertise keys", receive, KeyAdvertisement.from_bytes, data)
    with net.timed("server: advertise keys"):
        broadcast = server.broadcast_keys()

    # Round 1: share keys.
    leaves(DropPoint.AFTER_ADVERTISE)
    for advert in broadcast.adverts:
        silo = advert.silo
        data = net.carry(silo, False, broadcast, broadcast.to_bytes())
        shares = net.deliver(silo, "client: share keys", clients[silo].share_keys, KeyBroadcast.from_bytes, data)
        if shares is not None:
            data = net.carry(silo, True, shares, shares.to_bytes())
            net.deliver(silo, "server: share keys", partial(server.receive_shares, silo), ShareKeys.from_bytes, data)
    with net.timed("server: share keys"):
        deliveries = server.deliver_shares()
    for silo, delivery in deliveries.items():
        data = net.carry(silo, False, delivery, delivery.to_bytes())
        net.deliver(silo, "client: share keys", clients[silo].receive_shares, ShareDelivery.from_bytes, data)

    # Round 2: masked input, streamed chunk by chunk.
    leaves(DropPoint.AFTER_SHARE_KEYS)
    for silo in sorted(set(deliveries) - net.gone):
        values, weight = inputs[silo]
        chunks = net.attempt(silo, "client: masked input", partial(clients[silo].masked_input, values, weight))
        if chunks is None:
            continue
        drop = drops.get(silo)
        limit = drop.chunks_sent if drop is not None and drop.at is DropPoint.MID_STREAM else None
        digest = net.attempt(
            silo, "client: masked input", partial(masked_payload_digest, _send(net, silo, chunks, limit))
        )
        if limit is not None:
            net.gone.add(silo)
        elif digest is not None:
            net.attempt(silo, "server: masked input", partial(server.finish_input, silo, digest))
    for silo, reason in (denied or {}).items():
        server.exclude(silo, reason)

    # Round 3: consistency check.
    leaves(DropPoint.AFTER_INPUT)
    with net.timed("server: consistency check"):
        request = server.unmask_request()
    for silo in request.survivors:
        data = net.carry(silo, False, request, request.to_bytes())
        confirmation = net.deliver(
            silo, "client: consistency check", clients[silo].confirm, UnmaskRequest.from_bytes, data
        )
        if confirmation is not None:
            data = net.carry(silo, True, confirmation, confirmation.to_bytes())
            receive = partial(server.receive_confirmation, silo)
            net.deliver(silo, "server: consistency check", receive, SurvivorConfirmation.from_bytes, data)
    with net.timed("server: consistency check"):
        confirmations = server.confirmations()

    # Round 4: unmasking.
    leaves(DropPoint.AFTER_CONFIRM)
    for confirmed in confirmations.confirmations:
        silo = confirmed.silo
        data = net.carry(silo, False, confirmations, confirmations.to_bytes())
        response = net.deliver(silo, "client: unmasking", clients[silo].unmask, Confirmations.from_bytes, data)
        if response is not None:
            data = net.carry(silo, True, response, response.to_bytes())
            receive = partial(server.receive_unmask, silo)
            net.deliver(silo, "server: unmasking", receive, UnmaskResponse.from_bytes, data)
    with net.timed("server: unmasking"):
        result = server.result()
    return LocalRound(result, server, dict(net.refusals), dict(net.seconds), dict(net.up), dict(net.down))


def _send(net: _Driver, silo: SiloName, chunks: Iterator[MaskedChunk], limit: int | None) -> Iterator[MaskedChunk]:
    """Deliver each chunk to the server as the client makes it (at most ``limit``), passing it on for digesting."""
    for index, chunk in enumerate(chunks):
        if limit is not None and index >= limit:
            return
        data = net.carry(silo, True, chunk, chunk.to_bytes())
        with net.timed("server: masked input"):
            net.server.add_chunk(silo, MaskedChunk.from_bytes(data))
        yield chunk
