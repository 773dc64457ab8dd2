"""The last steps of an update's way: the silo signs what it claims, then streams it to the hub.

``Sign`` turns the filled ``OutgoingUpdate`` into signed ``UpdateMetadata`` (the claims the
policy reads and the payload digest the hub checks); ``Send`` is the list's final step,
the only one that talks to the hub, and returns its verdict to the steps above it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import grpc

from fedsilo import __version__
from fedsilo.identity import Signer
from fedsilo.protocol import (
    PolicyVerdict,
    UpdateMetadata,
    mechanism_claim,
    round_ref,
    rpc,
    update_stream,
    verdict_from_proto,
)

from ._pipeline import Next, OutgoingUpdate

log = logging.getLogger("fedsilo.sidecar")


@dataclass(frozen=True)
class Sign:
    """Step: the update's claims as canonical metadata, signed with the silo's Ed25519 key."""

    job: str
    silo: str
    # The silo's key, or its key in force per round (``SiloKeys``) when the key may be rotated.
    signing_key: Signer
    # The trainer image's digest where the silo knows it (``SidecarConfig.trainer_image_digest``).
    trainer_image_digest: str | None = None

    def __call__(self, update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
        """Sign the claims about the encoded payload."""
        payload = update.require_payload()
        if not update.architecture:
            raise RuntimeError("no architecture fingerprint: the check step must come before the sign step")
        metadata = UpdateMetadata(
            job=self.job,
            round=update.plan.round,
            silo=self.silo,
            nonce=secrets.token_hex(16),
            l2_norm=update.l2_norm,
            num_samples=update.records,
            vector_length=update.plan.vector_length,
            dtype=payload.dtype,
            payload_digest=payload.digest,
            epsilon_round=update.epsilon_round,
            fedsilo_version=__version__,
            architecture=update.architecture,
            mechanism=mechanism_claim(update.mechanism.to_json()) if update.mechanism is not None else None,
            trainer_image_digest=self.trainer_image_digest,
            compression=update.compression,
        )
        update.signed_metadata = metadata.canonical_bytes()
        update.signature = self.signing_key.sign(update.signed_metadata)
        return call_next(update)


@dataclass(frozen=True)
class Send:
    """Final step: reserve an upload slot, then stream the signed metadata and the payload; the hub's verdict goes back up.

    Reserving first means the payload waits here, not in the hub's buffers, while other silos
    upload (``ReserveUpload``). A reservation the hub does not give (an older hub, a closed
    round, a deadline) is not a verdict: the upload goes anyway and the hub decides it.
    """

    stub: rpc.AggregatorStub
    job: str
    silo: str
    # The longest the hub may take to free a slot: its wait ends at the round's input deadline.
    reserve_timeout_seconds: float

    def __call__(self, update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
        """Submit the update (``call_next`` is never called: nothing comes after the wire)."""
        if not update.signature:
            raise RuntimeError("the update is not signed: the sign step must come before the send step")
        payload = update.require_payload()
        try:
            self.stub.ReserveUpload(
                round_ref(self.job, update.plan.round, self.silo), timeout=self.reserve_timeout_seconds
            )
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNIMPLEMENTED:
                log.info(
                    "no upload slot reserved for round %d (%s): uploading anyway", update.plan.round, error.details()
                )
        stream = update_stream(update.signed_metadata, update.signature, payload.chunks(), payload.dtype)
        return verdict_from_proto(self.stub.SubmitUpdate(stream))
