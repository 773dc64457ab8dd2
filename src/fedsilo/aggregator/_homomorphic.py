"""Homomorphic aggregation: the ``Aggregation`` interface over ``fedsilo.he``; the hub never holds a key share.

Per round (``HomomorphicAggregation``):

1. setup step ``advertise`` (the key ceremony): each silo posts its signed public key share;
   the hub checks each (signature, job, seed, SEAL's loader), records every refusal in the
   audit log, and relays the transcript of the valid ones to their senders, who each verify
   it and assemble the same joint key;
2. input step: each update's payload is the joint key's id and the ciphertext chunks, signed
   through its ``UpdateMetadata``; ``check_payload`` refuses a wrong key, a replayed chunk or
   a malformed one before the policy decides, and ``admit`` adds the chunks to the sum;
3. decryption (the unmask step's place): every silo of the key downloads the sum
   (``GetEncryptedSum``) and posts a signed, flooded decryption share
   (``SubmitDecryptionShare``); the hub fuses them into the sum of the weighted updates.
   A silo of the key that gives no valid share fails the round (``RoundFailed``): its key
   share is needed and exists nowhere else, so the coordinator records the failure and
   retries the round with the silos still live, under a new key.

Who calls it: ``round_aggregation`` (``_round.py``) builds it for each round of a
homomorphic job; the coordinator drives it like masked mode.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from fedsilo.he import (
    CheckedChunks,
    CiphertextRejected,
    EncryptedSum,
    HEParameters,
    JointKey,
    KeyCeremony,
    RejectionKind,
    SeenChunks,
    check_decryption_share,
    chunk_digest,
    fuse,
    verified_joint_key,
    wire,
)
from fedsilo.identity import SignatureError, VerifyKey, sha256_digest
from fedsilo.policy import Reason, Refusal
from fedsilo.protocol import StreamError, check_chunk_size

from ._aggregation import Aggregation, FloatSum, RoundSum, UpdateSink
from ._contracts import RoundFailed, UpdateGate

log = logging.getLogger("fedsilo.aggregator")

_REASONS: Final = {
    RejectionKind.MALFORMED: Reason.CIPHERTEXT_MALFORMED,
    RejectionKind.WRONG_KEY: Reason.CIPHERTEXT_WRONG_KEY,
    RejectionKind.REPLAYED: Reason.CIPHERTEXT_REPLAYED,
}


def refusal_of(rejected: CiphertextRejected) -> Refusal:
    """The reason-coded refusal of a rejected ciphertext or ceremony message (the one mapping)."""
    return Refusal(_REASONS[rejected.kind], rejected.explanation)


@dataclass
class HomomorphicJob:
    """What outlives a round: the parameters, the digests of every admitted chunk, the audit gate."""

    job: str
    gate: UpdateGate
    params: HEParameters = field(default_factory=HEParameters)
    seen: SeenChunks = field(default_factory=SeenChunks)


class FrameSink(UpdateSink):
    """Keeps one silo's framed ciphertext payload (uint8 chunks, in order, at most ``limit`` bytes)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()

    def add(self, offset: int, dtype: str, values: npt.NDArray[np.generic]) -> None:
        if dtype != "uint8":
            raise StreamError(f"homomorphic mode takes uint8 chunks, got {dtype}")
        check_chunk_size(values.nbytes)
        if offset != len(self._buffer):
            raise StreamError(f"chunk at offset {offset}, expected {len(self._buffer)}")
        if len(self._buffer) + values.nbytes > self._limit:
            raise StreamError(f"the encrypted update is larger than {self._limit} bytes")
        self._buffer += values.tobytes()

    def finish(self) -> str:
        return "sha256:" + hashlib.sha256(self._buffer).hexdigest()

    @property
    def data(self) -> bytes:
        """The payload received."""
        return bytes(self._buffer)


class HomomorphicAggregation(Aggregation):
    """One round of homomorphic aggregation under a key the round's silos made together."""

    setup_steps = ("advertise",)

    def __init__(
        self, context: HomomorphicJob, round_number: int, vector_length: int, seed: bytes, keys: Mapping[str, VerifyKey]
    ) -> None:
        super().__init__(vector_length)
        self._context = context
        self._params = context.params
        self._round = round_number
        self._seed = seed
        self._keys = dict(keys)
        self._chunks = self._params.chunks(vector_length)
        self._sum = EncryptedSum(self._params, self._chunks)
        self._key: JointKey | None = None
        self._pending: dict[str, FrameSink] = {}
        self._checked: dict[str, tuple[list[str], CheckedChunks]] = {}
        self._contributors: list[str] = []
        self._summed: list[bytes] = []
        self._sum_digest = ""
        self._total: npt.NDArray[np.float64] | None = None

    # ----- the key ceremony -------------------------------------------------------------

    def setup_step(self, step: str, posted: Mapping[str, bytes]) -> dict[str, bytes]:
        if step != "advertise":
            return super().setup_step(step, posted)
        ceremony = KeyCeremony(self._params, self._context.job, self._seed, {s: self._keys[s] for s in posted})
        for silo, body in sorted(posted.items()):
            try:
                ceremony.submit(wire.decode_share(self._params, body), silo)
            except CiphertextRejected as rejected:
                self._refuse(silo, refusal_of(rejected))
            except SignatureError as error:
                self._refuse(silo, Refusal(Reason.SIGNATURE_INVALID, f"key share: {error}"))
        transcript = ceremony.transcript()
        members = {s: self._keys[s] for s in posted if s not in ceremony.missing}
        if not members:
            return {}
        self._key = verified_joint_key(self._params, self._context.job, self._seed, transcript, members)
        log.info("round %d: joint key %s of %s", self._round, self._key.key_id[:19], ", ".join(sorted(members)))
        # The ceremony is on record: which key, made from which silos' signed shares.
        self._context.gate.record_operation(
            job=self._context.job,
            operation="key_ceremony",
            round_number=self._round,
            reason="the round's joint key, from the key shares of the silos that advertised one",
            details={
                "key_id": self._key.key_id,
                "shares": {silo: sha256_digest(posted[silo]) for silo in sorted(members)},
            },
        )
        reply = wire.encode_transcript(transcript)
        return dict.fromkeys(members, reply)

    def _refuse(self, silo: str, refusal: Refusal) -> None:
        log.warning("round %d: key share of %s refused: %s", self._round, silo, refusal.text)
        self._context.gate.refuse(job=self._context.job, round_number=self._round, silo=silo, refusal=refusal)

    def _require_key(self) -> JointKey:
        if self._key is None:
            raise RoundFailed(f"round {self._round}: the key ceremony gave no joint key")
        return self._key

    # ----- updates ----------------------------------------------------------------------

    def open_update(self, silo: str) -> UpdateSink:
        sink = FrameSink(wire.update_bound(self._params, self._chunks))
        self._pending[silo] = sink
        return sink

    def check_payload(self, silo: str) -> None:
        """The ciphertexts before the policy decides: the round's key, never-seen chunks, SEAL-valid ones."""
        key = self._require_key()
        try:
            chunks = wire.decode_update(self._params, self._pending[silo].data, key.key_id, self._chunks)
            digests = [chunk_digest(chunk) for chunk in chunks]
            self._context.seen.check(digests)
            loaded = self._sum.check(chunks)
        except CiphertextRejected as rejected:
            raise refusal_of(rejected) from None
        self._checked[silo] = (digests, loaded)

    def admit(self, silo: str) -> None:
        self._pending.pop(silo)
        digests, loaded = self._checked.pop(silo)
        self._sum.add_checked(loaded)
        self._context.seen.admit(digests)
        self._contributors.append(silo)

    def exclude(self, silo: str, reason: str) -> None:
        self._pending.pop(silo, None)
        self._checked.pop(silo, None)

    # ----- decryption -------------------------------------------------------------------

    def decryptors(self, accepted: frozenset[str]) -> frozenset[str]:
        """Every silo of the round's key: each share is needed, whatever became of its own update."""
        return frozenset(self._require_key().silos)

    def unmask_request(self, survivors: frozenset[str]) -> bytes:
        self._summed = self._sum.chunks()
        body = wire.encode_sum(self._contributors, self._summed)
        self._sum_digest = chunk_digest(body)
        return body

    def unmask(self, posted: Mapping[str, bytes]) -> None:
        key = self._require_key()
        shares: dict[str, list[bytes]] = {}
        for silo in key.silos:
            body = posted.get(silo)
            if body is None:
                raise RoundFailed(f"round {self._round}: {silo} gave no decryption share (its key share is needed)")
            try:
                claim, signature, signed, parts = wire.decode_decryption(self._params, body, self._chunks)
                check_decryption_share(
                    self._context.job, self._round, silo, self._sum_digest, self._keys[silo], claim, signature, signed
                )
            except CiphertextRejected as rejected:
                self._refuse(silo, refusal_of(rejected))
                raise RoundFailed(f"round {self._round}: {silo}'s decryption share is refused: {rejected}") from None
            except SignatureError as error:
                self._refuse(silo, Refusal(Reason.SIGNATURE_INVALID, f"decryption share: {error}"))
                raise RoundFailed(f"round {self._round}: {silo}'s decryption share is not signed by it") from None
            shares[silo] = parts
        self._total = fuse(self._params, self._summed, shares, self.vector_length)

    def result(self) -> RoundSum:
        if self._total is None:
            raise RoundFailed(f"round {self._round}: the sum was not decrypted")
        return FloatSum(self._total[:-1], float(self._total[-1]))

    def coordinate_error(self) -> float:
        """CKKS decodes each value of the sum within the parameters' stated bound (flooding noise dominates)."""
        return self._params.error_bound(len(self._keys))
