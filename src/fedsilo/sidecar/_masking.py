"""The sidecar's part in masked aggregation: one ``SecAggClient`` carried over gRPC.

Masking happens here, in the silo, so what leaves the silo is already masked; the
aggregator relays key messages and only ever sees masked payloads. ``MaskedEncode`` is
masked mode's encode step on an update's way (``_pipeline``): it sets up the round's
keys, masks the fixed-point update, and after the verdict reveals what the hub asks for.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import numpy.typing as npt

from fedsilo.compression import low_bits, pack_words, packed_size
from fedsilo.protocol import PolicyVerdict, RoundPlan, round_ref, rpc, secagg_envelope
from fedsilo.secagg import CHUNK_WORDS, MaskStreams, SecAggClient, SecAggConfig, SecAggError, choose_graph

from ._compress import packed_payload
from ._config import SidecarConfig
from ._keys import SiloKeys
from ._pipeline import Next, OutgoingUpdate, Payload

log = logging.getLogger("fedsilo.sidecar")


class MaskedSubmission:
    """One round's masked update from this silo."""

    def __init__(
        self,
        plan: RoundPlan,
        config: SidecarConfig,
        keys: SiloKeys,
        update: npt.NDArray[np.float32],
        weight: int,
        levels: npt.NDArray[np.uint32] | None = None,
    ) -> None:
        spec = config.job.spec
        self._ref = round_ref(config.job.metadata.name, plan.round, config.silo)
        # The silo derives the graph and its threshold from the job itself, and holds the hub to them.
        graph = choose_graph(spec)
        if plan.threshold != graph.threshold:
            raise SecAggError(
                f"the round's Shamir threshold {plan.threshold} is not the job's {graph.threshold} ({graph.reason})"
            )
        self._client = SecAggClient(
            SecAggConfig(
                job=config.job.metadata.name,
                round=plan.round,
                silos=tuple(spec.silos),
                threshold=plan.threshold,
                # A compressed round masks its levels only: the round's subset, no weight word.
                vector_length=plan.vector_length if levels is None else levels.size,
                fractional_bits=plan.fractional_bits,
                clip_range=spec.aggregation.clip_range,
                degree=graph.degree,
            ),
            config.silo,
            keys,  # the silo's key in force and its peers' (rotated at round boundaries)
            keys.peers,
        )
        self._update = update
        self._weight = weight
        self._levels = levels
        self._word_bits = plan.compression.word_bits if plan.compression is not None else 32
        self._masked: npt.NDArray[np.uint32] | None = None
        self.packed: npt.NDArray[np.uint8] = np.zeros(0, dtype=np.uint8)
        self.digest = ""

    def setup(self, stub: rpc.AggregatorStub) -> None:
        """Advertise keys and exchange encrypted shares (blocks until both steps close)."""
        reply = stub.AdvertiseKeys(secagg_envelope(self._ref, self._client.advertise()))
        self._client.receive_adverts(reply.body)
        reply = stub.ShareKeys(secagg_envelope(self._ref, self._client.share_keys()))
        self._client.receive_shares(reply.body)
        if self._levels is None:
            # Encoded and masked slice by slice into the one vector that is sent: no second copy.
            self._masked = self._client.masked_input(self._update, self._weight)
            self.digest = "sha256:" + hashlib.sha256(self._masked.data).hexdigest()
        else:
            self.packed = masked_packed(self._levels, self._client.mask_streams(), self._word_bits)

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
        stub.Unmask(secagg_envelope(self._ref, answer))


def masked_packed(levels: npt.NDArray[np.uint32], masks: MaskStreams, word_bits: int) -> npt.NDArray[np.uint8]:
    """The low ``word_bits`` bits of each masked level, packed; masked and packed one chunk at a time.

    Each chunk of levels is copied, masked and packed while it is small: beside the levels and
    the packed bytes the silo holds one chunk, and ``levels`` is left as it was. A chunk of
    ``CHUNK_WORDS`` words (a multiple of 8) ends on a byte boundary at any width, so the
    chunks' packed bytes laid end to end are the whole vector's packed bytes.
    """
    packed = np.empty(packed_size(levels.size, word_bits), dtype=np.uint8)
    keep = low_bits(word_bits)
    for start in range(0, levels.size, CHUNK_WORDS):
        piece = levels[start : start + CHUNK_WORDS].astype(np.uint32)
        masks.apply(piece)
        np.bitwise_and(piece, keep, out=piece)
        first = start * word_bits // 8
        packed[first : first + packed_size(piece.size, word_bits)] = pack_words(piece, word_bits)
    return packed


@dataclass(frozen=True)
class MaskedEncode:
    """Step (masked mode): the update in fixed point, masked with this round's pairwise keys."""

    config: SidecarConfig
    keys: SiloKeys
    stub: rpc.AggregatorStub

    def __call__(self, update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
        """Mask, send, and unmask if this silo is asked to."""
        levels = None if update.compressed is None else update.compressed.astype(np.uint32, copy=False)
        submission = MaskedSubmission(
            update.plan, self.config, self.keys, update.require_delta(), update.weight, levels
        )
        submission.setup(self.stub)
        if levels is None:
            update.payload = Payload("uint32", submission.chunks, submission.digest)
        else:
            update.payload = packed_payload(submission.packed)
        verdict = call_next(update)
        submission.unmask(self.stub)
        return verdict
