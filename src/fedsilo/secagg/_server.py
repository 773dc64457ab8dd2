"""The hub's side of secure aggregation (Bonawitz et al., CCS 2017), without I/O.

The aggregator feeds one ``SecAggServer`` per round with what silos send, and closes each
step when every silo answered or the step timed out:

0. ``receive_advertise`` ... ``broadcast_keys()``: signed key advertisements (U1).
1. ``receive_shares`` ... ``deliver_shares()``: encrypted shares, relayed unread (U2).
2. ``add_chunk`` / ``finish_input`` / ``exclude``: masked chunks are added into one running
   uint32 sum as they arrive and kept, masked, in an on-disk undo log (``_spool``), so a
   silo that vanishes mid-stream, sends a payload other than the one it signed, or is
   denied by the policy is subtracted again. Memory stays one model, whatever the number
   of silos. ``unmask_request()`` fixes the survivors U3.
3. ``receive_confirmation`` ... ``confirmations()``: survivors' signatures on U3 (U4).
4. ``receive_unmask`` ... ``result()``: from at least t survivors' shares, rebuild the
   survivors' self-mask seeds and the dropped silos' masking keys, remove those masks
   chunk by chunk, and decode the sum.

Each ``receive_*``/``add_chunk`` raises a ``SecAggError`` for a message it refuses; a refusal
other than a late or repeated message also leaves the silo out of the round with that
reason. A step that closes with fewer than t silos raises ``SecAggAbort``. The server
never holds a single silo's unmasked input: only masked chunks, their sum, and shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fedsilo.api import SiloName
from fedsilo.identity import (
    AgreementKey,
    KeystreamBuffer,
    SignatureError,
    StreamingDigest,
    VerifyKey,
    constant_time_equal,
)

from ._client import SEED_BYTES
from ._config import SecAggConfig
from ._errors import (
    PayloadRejected,
    ProtocolStateError,
    ReconstructionFailed,
    SecAggAbort,
    SecAggError,
    ShareRejected,
    SignatureRejected,
)
from ._fixed_point import decode_sum
from ._masking import Mask, adds_pairwise_mask, apply_masks
from ._messages import (
    Confirmations,
    EncryptedShare,
    KeyAdvertisement,
    KeyBroadcast,
    MaskedChunk,
    RevealedShare,
    ShareDelivery,
    ShareKeys,
    SurvivorConfirmation,
    UnmaskRequest,
    UnmaskResponse,
)
from ._shamir import ShamirError, reconstruct
from ._spool import Spool

_KEY_BYTES = 32


@dataclass(frozen=True)
class AggregateResult:
    """The outcome of one round: the sum of the survivors' weighted inputs, and who was left out why."""

    sum_vector: npt.NDArray[np.float64]
    total_weight: int
    survivors: frozenset[SiloName]
    dropped: Mapping[SiloName, str]
    encoded_sum: npt.NDArray[np.uint32] = field(repr=False)

    def mean(self) -> npt.NDArray[np.float64]:
        """The weighted mean of the survivors' updates (FedAvg)."""
        return self.sum_vector / self.total_weight


class _Step(Enum):
    ADVERTISE = "advertise keys"
    SHARE_KEYS = "share keys"
    INPUT = "masked input"
    CONFIRM = "consistency check"
    UNMASK = "unmasking"
    DONE = "done"


@dataclass
class _Upload:
    """One silo's masked input as it streams in."""

    received: int = 0
    finished: bool = False
    digest: StreamingDigest = field(default_factory=StreamingDigest)


class SecAggServer:
    """The hub in one round.

    ``spool_dir`` holds the undo log of masked chunks (the system's temporary directory if
    None): up to one masked model per silo on disk, deleted when the survivors are fixed.
    Not thread-safe: the aggregator serializes calls for a round.
    """

    def __init__(
        self, config: SecAggConfig, verify_keys: Mapping[str, VerifyKey], spool_dir: Path | None = None
    ) -> None:
        self.config = config
        self._verify_keys = dict(verify_keys)
        self._spool_dir = spool_dir
        self._step = _Step.ADVERTISE
        self._excluded: dict[SiloName, str] = {}
        self._adverts: dict[SiloName, KeyAdvertisement] = {}
        self._u1: frozenset[SiloName] = frozenset()
        self._share_keys: dict[SiloName, ShareKeys] = {}
        self._commitments: dict[SiloName, bytes] = {}
        self._u2: frozenset[SiloName] = frozenset()
        self._sum: npt.NDArray[np.uint32] | None = None
        self._spool: Spool | None = None
        self._uploads: dict[SiloName, _Upload] = {}
        self._request: UnmaskRequest | None = None
        self._confirmations: dict[SiloName, SurvivorConfirmation] = {}
        self._u4: frozenset[SiloName] = frozenset()
        self._responses: dict[SiloName, UnmaskResponse] = {}
        self._result: AggregateResult | None = None

    def __repr__(self) -> str:
        return f"SecAggServer({self.config.job}/{self.config.round}, step={self._step.value})"

    @property
    def excluded(self) -> Mapping[SiloName, str]:
        """Silos left out so far, with the reason."""
        return dict(self._excluded)

    # ----- round 0: advertise keys ----------------------------------------------------------

    def receive_advertise(self, silo: SiloName, advert: KeyAdvertisement) -> None:
        """Accept ``silo``'s key advertisement if it is signed by the silo's registered key."""
        self._expect(_Step.ADVERTISE, silo)
        if silo in self._adverts:
            raise ProtocolStateError(f"advertise keys: {silo} already advertised its keys")
        if advert.silo != silo:
            raise self._refused(
                silo, SignatureRejected(f"advertise keys: {silo} sent an advertisement of {advert.silo}")
            )
        if silo not in self._verify_keys:
            raise self._refused(silo, SignatureRejected(f"advertise keys: {silo} has no registered key"))
        signed = KeyAdvertisement.signed_bytes(self.config, silo, advert.encryption_key, advert.masking_key)
        try:
            self._verify_keys[silo].verify(advert.signature, signed)
        except SignatureError as error:
            raise self._refused(
                silo, SignatureRejected(f"advertise keys: {silo}'s advertisement is not signed by its registered key")
            ) from error
        for key in (advert.encryption_key, advert.masking_key):
            try:
                AgreementKey.generate().exchange(key)
            except ValueError as error:
                raise self._refused(
                    silo, SecAggError(f"advertise keys: {silo} advertised a degenerate X25519 key")
                ) from error
        known = {k for a in self._adverts.values() for k in (a.encryption_key, a.masking_key)}
        if advert.encryption_key == advert.masking_key or known & {advert.encryption_key, advert.masking_key}:
            raise self._refused(
                silo, SecAggError(f"advertise keys: {silo} advertised a public key seen before (a replay)")
            )
        self._adverts[silo] = advert

    def broadcast_keys(self) -> KeyBroadcast:
        """Close round 0: the accepted advertisements (U1), the same message for every silo in U1."""
        self._close(_Step.ADVERTISE, _Step.SHARE_KEYS)
        self._u1 = frozenset(self._adverts)
        self._leave_out_missing(self._u1, "advertise keys: sent no valid key advertisement in time")
        self._require(len(self._u1), "advertise keys", "silos advertised keys")
        return KeyBroadcast(tuple(self._adverts[s] for s in sorted(self._u1)))

    # ----- round 1: share keys --------------------------------------------------------------

    def receive_shares(self, silo: SiloName, message: ShareKeys) -> None:
        """Accept ``silo``'s encrypted shares if they are addressed to exactly the other silos of U1."""
        self._expect(_Step.SHARE_KEYS, silo)
        if silo not in self._u1:
            raise ProtocolStateError(f"share keys: {silo} did not advertise keys in time")
        if silo in self._share_keys:
            raise ProtocolStateError(f"share keys: {silo} already shared its keys")
        if message.silo != silo:
            raise self._refused(silo, ShareRejected(f"share keys: {silo} sent the shares of {message.silo}"))
        if any(s.sender != silo for s in message.shares):
            raise self._refused(silo, ShareRejected(f"share keys: {silo} sent shares marked as from another silo"))
        receivers = {s.receiver for s in message.shares}
        if receivers != self._u1 - {silo}:
            raise self._refused(
                silo,
                ShareRejected(f"share keys: {silo} addressed shares to {sorted(receivers)}, not to the rest of U1"),
            )
        self._share_keys[silo] = message

    def deliver_shares(self) -> Mapping[SiloName, ShareDelivery]:
        """Close round 1: for each silo in U2, the shares the other silos of U2 sent it."""
        self._close(_Step.SHARE_KEYS, _Step.INPUT)
        self._u2 = frozenset(self._share_keys)
        self._leave_out_missing(self._u2, "share keys: sent no valid shares in time")
        self._require(len(self._u2), "share keys", "silos shared keys")
        inbox: dict[SiloName, list[EncryptedShare]] = {silo: [] for silo in self._u2}
        for sender in sorted(self._u2):
            for share in self._share_keys[sender].shares:
                if share.receiver in inbox:
                    inbox[share.receiver].append(share)
        self._commitments = {s: self._share_keys[s].seed_commitment for s in self._u2}
        self._share_keys.clear()
        self._sum = np.zeros(self.config.masked_length, dtype=np.uint32)
        self._spool = Spool(self.config, self._spool_dir)
        return {silo: ShareDelivery(silo, tuple(shares)) for silo, shares in inbox.items()}

    # ----- round 2: masked input ------------------------------------------------------------

    def add_chunk(self, silo: SiloName, chunk: MaskedChunk) -> None:
        """Add the next chunk of ``silo``'s masked input into the running sum (chunks come in order)."""
        self._expect(_Step.INPUT, silo)
        if silo not in self._u2:
            raise PayloadRejected(f"masked input: {silo} did not share keys; its input could never be unmasked")
        upload = self._uploads.setdefault(silo, _Upload())
        if upload.finished:
            raise PayloadRejected(f"masked input: a chunk from {silo} after its input was finished")
        c = self.config
        if chunk.silo != silo:
            raise self._refused(silo, PayloadRejected(f"masked input: {silo} sent a chunk of {chunk.silo}"))
        if chunk.offset != upload.received or upload.received >= c.masked_length:
            raise self._refused(
                silo,
                PayloadRejected(
                    f"masked input: {silo} sent a chunk at word {chunk.offset}, expected {upload.received}"
                ),
            )
        if chunk.words.size != c.chunk_length(chunk.offset):
            raise self._refused(
                silo,
                PayloadRejected(
                    f"masked input: {silo}'s chunk at word {chunk.offset} has {chunk.words.size} words, "
                    f"expected {c.chunk_length(chunk.offset)}"
                ),
            )
        assert self._sum is not None and self._spool is not None
        view = self._sum[chunk.offset : chunk.offset + chunk.words.size]
        np.add(view, chunk.words, out=view)
        self._spool.write(c.x_of(silo), chunk.offset, chunk.words)
        upload.digest.update(chunk.words.data)
        upload.received += chunk.words.size

    def received_digest(self, silo: SiloName) -> str:
        """``sha256:<hex>`` of the masked words received from ``silo`` so far."""
        upload = self._uploads.get(silo)
        return (upload.digest if upload else StreamingDigest()).text()

    def finish_input(self, silo: SiloName, signed_digest: str) -> None:
        """``silo``'s input is complete; count it if it is the payload the silo signed.

        A short input or a digest other than ``signed_digest`` (from the silo's signed update
        metadata) takes the silo out again and raises ``PayloadRejected``.
        """
        self._expect(_Step.INPUT, silo)
        if silo not in self._u2:
            raise PayloadRejected(f"masked input: {silo} did not share keys; its input could never be unmasked")
        upload = self._uploads.get(silo, _Upload())
        if upload.received != self.config.masked_length:
            raise self._refused(
                silo,
                PayloadRejected(
                    f"masked input: {silo}'s input ended after {upload.received} of {self.config.masked_length} words"
                ),
            )
        if upload.finished:
            raise ProtocolStateError(f"masked input: {silo}'s input is already finished")
        received = upload.digest.text()
        if not constant_time_equal(received.encode(), signed_digest.encode()):
            raise self._refused(
                silo,
                PayloadRejected(
                    f"masked input: {silo}'s payload digest {received} is not the digest it signed "
                    f"({signed_digest}): the masked payload was altered"
                ),
            )
        upload.finished = True

    def exclude(self, silo: SiloName, reason: str) -> None:
        """Leave ``silo``'s input out of the sum (dropped, denied, invalid); allowed until ``unmask_request()``.

        Whatever it sent is subtracted again, and its masks are removed in the recovery
        step as for any dropped silo. Excluding a silo twice keeps the first reason.
        """
        self.config.x_of(silo)
        if self._step not in (_Step.ADVERTISE, _Step.SHARE_KEYS, _Step.INPUT):
            raise ProtocolStateError(f"exclude: the survivors are fixed; {silo} can no longer be left out")
        if silo in self._excluded:
            return
        self._excluded[silo] = reason
        # Its advertisement stays once broadcast: recovery checks a rebuilt key against it.
        if self._step is _Step.ADVERTISE:
            self._adverts.pop(silo, None)
        self._share_keys.pop(silo, None)
        upload = self._uploads.pop(silo, None)
        if upload is not None and upload.received:
            self._subtract(silo, upload.received)

    def _subtract(self, silo: SiloName, received: int) -> None:
        assert self._sum is not None and self._spool is not None
        scratch = np.empty(self.config.chunk_elements, dtype=np.uint32)
        for offset, words in self._spool.read(self.config.x_of(silo), received, scratch):
            view = self._sum[offset : offset + words.size]
            np.subtract(view, words, out=view)

    def unmask_request(self) -> UnmaskRequest:
        """Close round 2: survivors (finished, counted inputs) and dropped silos (the rest of U2)."""
        self._expect(_Step.INPUT, None)
        for silo in sorted(self._u2 - self._excluded.keys()):
            upload = self._uploads.get(silo)
            if upload is None:
                self.exclude(silo, "masked input: sent no input before the step closed")
            elif not upload.finished:
                self.exclude(silo, f"masked input: sent {upload.received} words, not all, before the step closed")
        self._close(_Step.INPUT, _Step.CONFIRM)
        assert self._spool is not None
        self._spool.close()
        survivors = tuple(sorted(self._uploads))
        self._require(len(survivors), "masked input", "inputs were counted")
        self._request = UnmaskRequest(survivors, tuple(sorted(self._u2 - set(survivors))))
        return self._request

    # ----- round 3: consistency check -------------------------------------------------------

    def receive_confirmation(self, silo: SiloName, confirmation: SurvivorConfirmation) -> None:
        """Accept a survivor's signature on the survivor set."""
        self._expect(_Step.CONFIRM, silo)
        request = self._request
        assert request is not None
        if silo not in request.survivors:
            raise ProtocolStateError(f"consistency check: {silo} is not a survivor")
        if silo in self._confirmations:
            raise ProtocolStateError(f"consistency check: {silo} already confirmed")
        if confirmation.silo != silo:
            raise SignatureRejected(f"consistency check: {silo} sent the confirmation of {confirmation.silo}")
        try:
            self._verify_keys[silo].verify(confirmation.signature, request.signed_bytes(self.config))
        except SignatureError as error:
            raise SignatureRejected(
                f"consistency check: {silo}'s confirmation is not its signature on the survivor set"
            ) from error
        self._confirmations[silo] = confirmation

    def confirmations(self) -> Confirmations:
        """Close round 3: the survivors' signatures (U4), the same message for each of them."""
        self._close(_Step.CONFIRM, _Step.UNMASK)
        self._u4 = frozenset(self._confirmations)
        self._require(len(self._u4), "consistency check", "survivors confirmed the survivor set")
        return Confirmations(tuple(self._confirmations[s] for s in sorted(self._u4)))

    # ----- round 4: unmasking ---------------------------------------------------------------

    def receive_unmask(self, silo: SiloName, response: UnmaskResponse) -> None:
        """Accept a survivor's shares if they answer the request and sit at the silo's own point."""
        self._expect(_Step.UNMASK, silo)
        request = self._request
        assert request is not None
        if silo not in self._u4:
            raise ProtocolStateError(f"unmasking: {silo} did not confirm the survivor set")
        if silo in self._responses:
            raise ProtocolStateError(f"unmasking: {silo} already answered")
        if response.silo != silo:
            raise ShareRejected(f"unmasking: {silo} sent the answer of {response.silo}")
        if (
            tuple(r.owner for r in response.seed_shares) != request.survivors
            or tuple(r.owner for r in response.key_shares) != request.dropped
        ):
            raise ShareRejected(f"unmasking: {silo}'s shares do not answer the unmask request")
        point = self.config.x_of(silo)
        for revealed in response.seed_shares + response.key_shares:
            if revealed.share.x != point:
                raise ShareRejected(
                    f"unmasking: {silo} revealed a share of {revealed.owner} at point {revealed.share.x}, "
                    f"but its own point is {point} (a share from the wrong peer)"
                )
        self._responses[silo] = response

    def result(self) -> AggregateResult:
        """Close round 4: rebuild seeds and keys, remove every remaining mask, decode the sum."""
        if self._result is not None:
            return self._result
        self._close(_Step.UNMASK, _Step.DONE)
        request = self._request
        assert request is not None and self._sum is not None
        self._require(len(self._responses), "unmasking", "survivors revealed their shares")
        c = self.config
        answers = list(self._responses.values())
        masks = []
        for survivor, seed in zip(request.survivors, self._seeds(request, answers), strict=True):
            masks.append(Mask(c.self_mask_key(seed, survivor), add=False))
        for gone, key in zip(request.dropped, self._masking_keys(request, answers), strict=True):
            for survivor in request.survivors:
                secret = key.exchange(self._adverts[survivor].masking_key)
                # The survivor added this mask if it does so by the ordering; undo whichever it did.
                masks.append(
                    Mask(c.pairwise_mask_key(secret, gone, survivor), not adds_pairwise_mask(c, survivor, gone))
                )
        keystream = KeystreamBuffer(c.chunk_elements)
        for offset in c.chunk_offsets():
            apply_masks(self._sum[offset : offset + c.chunk_length(offset)], offset, masks, keystream)
        total, weight = decode_sum(self._sum, c.clip_range, c.fractional_bits)
        self._result = AggregateResult(total, weight, frozenset(request.survivors), dict(self._excluded), self._sum)
        return self._result

    def _seeds(self, request: UnmaskRequest, answers: list[UnmaskResponse]) -> list[bytes]:
        seeds = []
        for i, survivor in enumerate(request.survivors):
            seed = self._rebuild(survivor, "self-mask seed", [a.seed_shares[i] for a in answers], SEED_BYTES)
            if not constant_time_equal(self.config.seed_commitment(seed, survivor), self._commitments[survivor]):
                raise ReconstructionFailed(
                    f"unmasking: the shares of {survivor}'s self-mask seed rebuild a value it did not commit to"
                )
            seeds.append(seed)
        return seeds

    def _masking_keys(self, request: UnmaskRequest, answers: list[UnmaskResponse]) -> list[AgreementKey]:
        keys = []
        for i, gone in enumerate(request.dropped):
            raw = self._rebuild(gone, "masking key", [a.key_shares[i] for a in answers], _KEY_BYTES)
            key = AgreementKey.from_private_bytes(raw)
            if not constant_time_equal(key.public_bytes(), self._adverts[gone].masking_key):
                raise ReconstructionFailed(
                    f"unmasking: the shares of {gone}'s masking key rebuild a key other than the one it advertised"
                )
            keys.append(key)
        return keys

    def _rebuild(self, owner: SiloName, what: str, revealed: list[RevealedShare], length: int) -> bytes:
        try:
            return reconstruct([r.share for r in revealed], self.config.threshold, length)
        except ShamirError as error:
            raise ReconstructionFailed(f"unmasking: the shares of {owner}'s {what} disagree: {error.reason}") from error

    # ----- helpers --------------------------------------------------------------------------

    def _expect(self, step: _Step, silo: SiloName | None) -> None:
        if silo is not None:
            self.config.x_of(silo)
            if silo in self._excluded:
                raise ProtocolStateError(f"{step.value}: {silo} is left out of this round ({self._excluded[silo]})")
        if self._step is not step:
            raise ProtocolStateError(f"{step.value}: the round is at the {self._step.value} step")

    def _close(self, step: _Step, following: _Step) -> None:
        self._expect(step, None)
        self._step = following

    def _refused(self, silo: SiloName, error: SecAggError) -> SecAggError:
        """Leave ``silo`` out with ``error``'s reason; the caller raises the error."""
        self.exclude(silo, error.reason)
        return error

    def _leave_out_missing(self, present: frozenset[SiloName], reason: str) -> None:
        for silo in self.config.silos:
            if silo not in present:
                self._excluded.setdefault(silo, reason)

    def _require(self, alive: int, step: str, what: str) -> None:
        if alive < self.config.threshold:
            raise SecAggAbort(
                f"secure aggregation aborted at {step}: only {alive} {what}; the threshold is "
                f"{self.config.threshold}, so no input may be unmasked"
            )
