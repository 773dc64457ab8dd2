"""The sidecar's part in homomorphic aggregation: its key share, encryption and decryption share.

``HomomorphicEncode`` is homomorphic mode's encode step on an update's way (``_pipeline``):

1. it makes this round's secret key share (it never leaves this object, nor this process)
   and posts the signed public share (``AdvertiseKeys``); the hub relays the transcript of
   every valid share, which this silo verifies itself (each share signed by a silo of the
   job, the seed derived from the round, its own share included, at least ``minSilos``
   silos) before it trusts the joint key;
2. it encrypts ``[weight * update..., weight]`` under the joint key in chunks and frames them
   with the key's id as the payload the sign step signs;
3. after the verdict, whatever it was, it downloads the encrypted sum (``GetEncryptedSum``),
   refuses a sum the hub says holds fewer than ``minSilos`` updates, and sends its signed,
   flooded decryption share (``SubmitDecryptionShare``): its key share is needed to decrypt
   the sum whether or not its own update is in it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import numpy as np
import numpy.typing as npt

from fedsilo.he import (
    CiphertextRejected,
    HEParameters,
    JointKey,
    KeyShare,
    KeyShareClaim,
    chunk_digest,
    decryption_share,
    encrypt_update,
    round_seed,
    sign_decryption_share,
    sign_key_share,
    verified_joint_key,
    wire,
)
from fedsilo.identity import SignatureError
from fedsilo.protocol import (
    CHUNK_BYTES,
    PolicyVerdict,
    blob_from_chunks,
    pb,
    round_ref,
    rpc,
    secagg_envelope,
    share_upload,
)

from ._config import SidecarConfig
from ._keys import SiloKeys
from ._pipeline import Next, OutgoingUpdate, Payload, UpdateRefused
from ._update import weighted_plain_payload

log = logging.getLogger("fedsilo.sidecar")


@dataclass(frozen=True)
class HomomorphicEncode:
    """Step (homomorphic mode): join the round's key, encrypt the weighted update, decrypt the sum after."""

    config: SidecarConfig
    keys: SiloKeys
    stub: rpc.AggregatorStub
    params: HEParameters = field(default_factory=HEParameters)

    def __call__(self, update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
        """Key ceremony, encryption, send; then this silo's decryption share of the sum."""
        plan = update.plan
        job = self.config.job.metadata.name
        ref = round_ref(job, plan.round, self.config.silo)
        seed = round_seed(job, plan.round, plan.model_digest)
        share = KeyShare(self.params, seed)
        key = self._ceremony(ref, seed, share)
        vector = weighted_plain_payload(update.require_delta(), update.weight).astype(np.float64)
        payload = wire.encode_update(key.key_id, encrypt_update(self.params, key, vector))

        def chunks() -> Iterator[tuple[int, npt.NDArray[np.generic]]]:
            view = np.frombuffer(payload, dtype=np.uint8)
            for offset in range(0, view.size, CHUNK_BYTES):
                yield offset, view[offset : offset + CHUNK_BYTES]

        update.payload = Payload("uint8", chunks, chunk_digest(payload))
        verdict = call_next(update)
        self._decrypt(ref, plan.vector_length, share)
        return verdict

    def _ceremony(self, ref: pb.RoundRef, seed: bytes, share: KeyShare) -> JointKey:
        """Post the signed public share; verify the relayed transcript; the joint key."""
        job, silo = self.config.job.metadata.name, self.config.silo
        message = sign_key_share(self.keys, job, silo, seed, share.public_share)
        reply = self.stub.AdvertiseKeys(secagg_envelope(ref, wire.encode_share(message)))
        try:
            transcript = wire.decode_transcript(self.params, reply.body)
            members = {KeyShareClaim.parse(m.claim).silo for m in transcript}
            unknown = members - set(self.keys.peers)
            if unknown or silo not in members:
                raise UpdateRefused(f"key_ceremony_invalid: the transcript names {sorted(unknown) or 'not this silo'}")
            least = max(2, self.config.job.spec.min_silos)
            if len(members) < least:
                raise UpdateRefused(f"key_ceremony_invalid: {len(members)} silos in the key, fewer than {least}")
            keys = {name: self.keys.peers[name] for name in members}
            return verified_joint_key(self.params, job, seed, transcript, keys)
        except (CiphertextRejected, SignatureError, ValueError) as error:
            raise UpdateRefused(f"key_ceremony_invalid: {error}") from None

    def _decrypt(self, ref: pb.RoundRef, vector_length: int, share: KeyShare) -> None:
        """Download the sum, check it, and send this silo's signed decryption share."""
        chunks = self.params.chunks(vector_length)
        try:
            body = blob_from_chunks(self.stub.GetEncryptedSum(ref), wire.sum_bound(self.params, chunks))
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                log.info("not asked to decrypt (%s)", error.details())
                return
            raise
        try:
            contributors, summed = wire.decode_sum(self.params, body, chunks)
            least = max(2, self.config.job.spec.min_silos)
            if len(set(contributors)) < least:
                log.error("refused to decrypt a sum of %d updates (fewer than %d)", len(set(contributors)), least)
                return
            shares = decryption_share(share, summed)
        except CiphertextRejected as error:
            log.error("refused to decrypt the hub's sum: %s", error)
            return
        signed = wire.pack(wire.DECRYPTION, shares)
        job, silo = self.config.job.metadata.name, self.config.silo
        claim, signature = sign_decryption_share(self.keys, job, ref.round, silo, chunk_digest(body), signed)
        self.stub.SubmitDecryptionShare(share_upload(ref, wire.encode_decryption(claim, signature, shares)))
