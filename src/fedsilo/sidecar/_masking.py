"""The sidecar's part in masked aggregation: one ``SecAggClient`` carried over gRPC.

Masking happens here, in the silo, so what leaves the silo is already masked; the
aggregator relays key messages and only ever sees masked payloads.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator

import grpc
import numpy as np
import numpy.typing as npt

from fedsilo.identity import SiloIdentity
from fedsilo.protocol import RoundPlan, pb, rpc
from fedsilo.secagg import CHUNK_WORDS, SecAggClient, SecAggConfig, SecAggError

from ._config import SidecarConfig

log = logging.getLogger("fedsilo.sidecar")


class MaskedSubmission:
    """One round's masked update from this silo."""

    def __init__(
        self,
        plan: RoundPlan,
        config: SidecarConfig,
        identity: SiloIdentity,
        update: npt.NDArray[np.float32],
        weight: int,
    ) -> None:
        spec = config.job.spec
        self._ref = pb.RoundRef(job=config.job.metadata.name, round=plan.round, silo=config.silo)
        self._client = SecAggClient(
            SecAggConfig(
                job=config.job.metadata.name,
                round=plan.round,
                silos=tuple(spec.silos),
                threshold=plan.threshold,
                vector_length=plan.vector_length,
                fractional_bits=plan.fractional_bits,
                clip_range=spec.aggregation.clip_range,
            ),
            config.silo,
            identity.signing_key,
            config.peer_keys,
        )
        self._update = update
        self._weight = weight
        self._masked: npt.NDArray[np.uint32] | None = None
        self.digest = ""

    def setup(self, stub: rpc.AggregatorStub) -> None:
        """Advertise keys and exchange encrypted shares (blocks until both steps close)."""
        reply = stub.AdvertiseKeys(pb.SecAggEnvelope(ref=self._ref, body=self._client.advertise()))
        self._client.receive_adverts(reply.body)
        reply = stub.ShareKeys(pb.SecAggEnvelope(ref=self._ref, body=self._client.share_keys()))
        self._client.receive_shares(reply.body)
        self._masked = self._client.masked_input(self._update, self._weight)
        self.digest = "sha256:" + hashlib.sha256(self._masked.tobytes()).hexdigest()

    def chunks(self) -> Iterator[tuple[int, npt.NDArray[np.uint32]]]:
        """The masked vector in wire-sized slices."""
        assert self._masked is not None, "setup() first"
        for offset in range(0, self._masked.size, CHUNK_WORDS):
            yield offset, self._masked[offset : offset + CHUNK_WORDS]

    def unmask(self, stub: rpc.AggregatorStub) -> None:
        """Reveal what the hub asks for, if this silo is a survivor."""
        try:
            request = stub.GetUnmaskRequest(self._ref)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                log.info("round %d: not asked to unmask (%s)", self._ref.round, error.details())
                return
            raise
        try:
            answer = self._client.unmask(request.body)
        except SecAggError as error:
            log.error("round %d: refused the unmask request: %s", self._ref.round, error.reason)
            return
        stub.Unmask(pb.SecAggEnvelope(ref=self._ref, body=answer))
