"""The silo's side of secure aggregation (Bonawitz et al., CCS 2017), without I/O.

The sidecar drives one ``SecAggClient`` per round and carries its messages to the hub:

0. ``advertise``: two fresh X25519 keys (c for share encryption, s for masking), signed
   with the silo's Ed25519 identity key.
1. ``share_keys``: check every peer's advertisement against its registered key, then send
   Shamir shares of the self-mask seed b_u and of s_sk, each encrypted to its peer;
   ``receive_shares`` opens the shares peers sent (the senders form U2).
2. ``masked_input``: the encoded input plus the self mask and the pairwise masks, chunk by
   chunk. Once per round: masks used twice would reveal the difference of two inputs.
3. ``confirm``: check the hub's survivor set and sign it (the paper's ConsistencyCheck).
4. ``unmask``: given at least t survivors' signatures on the same set, reveal seed shares
   of survivors and masking-key shares of dropped silos; never both for one silo.

This is the paper's actively secure variant: signed key advertisements, a signed
consistency check, and authenticated encryption of every share.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from enum import Enum

import numpy as np
import numpy.typing as npt

from fedsilo.api import SiloName
from fedsilo.identity import (
    AgreementKey,
    DecryptionError,
    KeystreamBuffer,
    SignatureError,
    SigningKey,
    VerifyKey,
    open_sealed,
    seal,
)

from ._config import SecAggConfig
from ._errors import (
    MalformedMessage,
    ProtectedSecretRequest,
    ProtocolStateError,
    SecAggAbort,
    SecAggError,
    ShareRejected,
    SignatureRejected,
)
from ._fixed_point import encode_chunk, weight_scale
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
    SharePlaintext,
    SurvivorConfirmation,
    UnmaskRequest,
    UnmaskResponse,
)
from ._shamir import Share, split

SEED_BYTES = 32


class _Step(Enum):
    ADVERTISE = "advertise"
    SHARE_KEYS = "share_keys"
    RECEIVE_SHARES = "receive_shares"
    MASKED_INPUT = "masked_input"
    CONFIRM = "confirm"
    UNMASK = "unmask"
    DONE = "done"


class SecAggClient:
    """One silo in one round. Methods must be called in protocol order, each once."""

    def __init__(
        self,
        config: SecAggConfig,
        me: SiloName,
        signing_key: SigningKey,
        peer_verify_keys: Mapping[str, VerifyKey],
    ) -> None:
        if not config.is_member(me):
            raise SecAggError(f"{me!r} is not a silo of job {config.job} round {config.round}")
        self.config = config
        self.me = me
        self._signing_key = signing_key
        self._verify_keys = dict(peer_verify_keys)
        self._encryption_key = AgreementKey.generate()
        self._masking_key = AgreementKey.generate()
        self._seed = secrets.token_bytes(SEED_BYTES)
        self._step = _Step.ADVERTISE
        self._adverts: dict[SiloName, KeyAdvertisement] = {}
        # The shares of each U2 member's seed and masking key that this silo holds (its own included).
        self._held: dict[SiloName, tuple[Share, Share]] = {}
        self._request: UnmaskRequest | None = None

    def __repr__(self) -> str:
        return f"SecAggClient({self.config.job}/{self.config.round}, {self.me}, step={self._step.value})"

    # ----- round 0 -------------------------------------------------------------------------

    def advertise(self) -> KeyAdvertisement:
        """This silo's two public keys for the round, signed."""
        self._advance(_Step.ADVERTISE, _Step.SHARE_KEYS)
        encryption, masking = self._encryption_key.public_bytes(), self._masking_key.public_bytes()
        signature = self._signing_key.sign(KeyAdvertisement.signed_bytes(self.config, self.me, encryption, masking))
        return KeyAdvertisement(self.me, encryption, masking, signature)

    # ----- round 1 -------------------------------------------------------------------------

    def share_keys(self, broadcast: KeyBroadcast) -> ShareKeys:
        """Check every advertisement (U1), then send each peer its encrypted shares."""
        self._advance(_Step.SHARE_KEYS, _Step.RECEIVE_SHARES)
        c = self.config
        for advert in broadcast.adverts:
            self._verify_advert(advert)
            self._adverts[advert.silo] = advert
        if self.me not in self._adverts:
            raise SecAggError("share keys: the key broadcast leaves out this silo's own keys")
        keys = [k for a in self._adverts.values() for k in (a.encryption_key, a.masking_key)]
        if len(set(keys)) != len(keys):
            # The paper's check: a repeated public key means a replayed or copied advertisement.
            raise SecAggError("share keys: two advertised public keys are equal (a replayed advertisement)")
        self._require(len(self._adverts), "share keys", "silos advertised keys")
        points = {silo: c.x_of(silo) for silo in self._adverts}
        seed_shares = split(self._seed, points.values(), c.threshold)
        key_shares = split(self._masking_key.private_bytes(), points.values(), c.threshold)
        mine = points[self.me]
        self._held[self.me] = (seed_shares[mine], key_shares[mine])
        sealed = []
        for peer in sorted(self._adverts):
            if peer == self.me:
                continue
            x = points[peer]
            plaintext = SharePlaintext(self.me, peer, seed_shares[x], key_shares[x]).to_bytes()
            key = self._share_key(peer)
            sealed.append(EncryptedShare(self.me, peer, seal(key, plaintext, c.share_context(self.me, peer))))
        return ShareKeys(self.me, c.seed_commitment(self._seed, self.me), tuple(sealed))

    def receive_shares(self, delivery: ShareDelivery) -> None:
        """Open the shares each peer sent this silo; the senders and this silo form U2."""
        self._advance(_Step.RECEIVE_SHARES, _Step.MASKED_INPUT)
        if delivery.receiver != self.me:
            raise ShareRejected(f"receive shares: the delivery is addressed to {delivery.receiver}, not {self.me}")
        for encrypted in delivery.shares:
            sender = encrypted.sender
            if encrypted.receiver != self.me:
                raise ShareRejected(f"receive shares: the share from {sender} is addressed to {encrypted.receiver}")
            if sender == self.me or sender not in self._adverts:
                raise ShareRejected(f"receive shares: a share from {sender!r}, which did not advertise keys")
            self._held[sender] = self._open(encrypted)
        self._require(len(self._held), "receive shares", "silos shared keys (this one included)")

    # ----- round 2 -------------------------------------------------------------------------

    def masked_input(self, values: npt.NDArray[np.floating], weight: int) -> Iterator[MaskedChunk]:
        """The masked encoding of ``values * weight`` and ``weight``, as chunks in order.

        ``values`` is clipped to the round's clip range here (whatever the caller did). The
        chunks are made lazily, one at a time, as the iterator is consumed; collect them in
        a list to both digest and send them.
        """
        self._expect(_Step.MASKED_INPUT)
        c = self.config
        flat = values.reshape(-1)
        if flat.size != c.vector_length:
            raise SecAggError(f"masked input: the update has {flat.size} values, the round expects {c.vector_length}")
        scale = weight_scale(weight, c.clip_range, c.fractional_bits, len(c.silos))
        # From here on the masks are spent, whether or not every chunk is consumed.
        self._step = _Step.CONFIRM
        masks = [Mask(c.self_mask_key(self._seed, self.me), add=True)]
        for peer in sorted(self._held):
            if peer != self.me:
                secret = self._agree(self._masking_key, self._adverts[peer].masking_key, peer)
                masks.append(Mask(c.pairwise_mask_key(secret, self.me, peer), adds_pairwise_mask(c, self.me, peer)))
        return self._chunks(flat, weight, scale, masks)

    def _chunks(
        self, values: npt.NDArray[np.floating], weight: int, scale: np.float32, masks: list[Mask]
    ) -> Iterator[MaskedChunk]:
        c = self.config
        keystream = KeystreamBuffer(c.chunk_elements)
        scratch = np.empty(c.chunk_elements, dtype=np.float32)
        for offset in c.chunk_offsets():
            words = np.empty(c.chunk_length(offset), dtype=np.uint32)
            count = min(words.size, c.vector_length - offset)
            encode_chunk(values[offset : offset + count], scale, c.clip_range, scratch[:count], words[:count])
            if count < words.size:
                words[count] = weight
            apply_masks(words, offset, masks, keystream)
            yield MaskedChunk(self.me, offset, words)

    # ----- round 3 -------------------------------------------------------------------------

    def confirm(self, request: UnmaskRequest) -> SurvivorConfirmation:
        """Check the hub's survivor set against this silo's view, and sign it."""
        self._advance(_Step.CONFIRM, _Step.UNMASK)
        survivors, dropped = set(request.survivors), set(request.dropped)
        both = sorted(survivors & dropped)
        if both:
            raise ProtectedSecretRequest(
                f"confirm: the hub asks for both the seed share and the masking-key share of {', '.join(both)}, "
                "which would unmask their inputs; refusing"
            )
        if self.me not in survivors:
            raise ProtocolStateError("confirm: the hub does not count this silo's input but asks it to unmask")
        self._require(len(survivors), "confirm", "survivors")
        u2 = set(self._held)
        if not survivors <= u2 or dropped != u2 - survivors:
            raise SecAggError(
                f"confirm: the hub's survivors {sorted(survivors)} and dropped silos {sorted(dropped)} do not "
                f"partition the silos that shared keys with this one ({sorted(u2)})"
            )
        self._request = request
        return SurvivorConfirmation(self.me, self._signing_key.sign(request.signed_bytes(self.config)))

    # ----- round 4 -------------------------------------------------------------------------

    def unmask(self, confirmations: Confirmations) -> UnmaskResponse:
        """Given at least t survivors' signatures on the same survivor set, reveal the shares it asks for."""
        self._advance(_Step.UNMASK, _Step.DONE)
        request = self._request
        if request is None:
            raise ProtocolStateError("unmask: confirm() first")
        signed = request.signed_bytes(self.config)
        for confirmation in confirmations.confirmations:
            if confirmation.silo not in request.survivors:
                raise SignatureRejected(f"unmask: a confirmation from {confirmation.silo}, which is not a survivor")
            try:
                self._verify_keys[confirmation.silo].verify(confirmation.signature, signed)
            except SignatureError as error:
                raise SignatureRejected(
                    f"unmask: {confirmation.silo} did not sign the survivor set this silo saw: {error.reason}"
                ) from error
        self._require(len(confirmations.confirmations), "unmask", "survivors confirmed the survivor set")
        return UnmaskResponse(
            self.me,
            tuple(RevealedShare(s, self._held[s][0]) for s in request.survivors),
            tuple(RevealedShare(s, self._held[s][1]) for s in request.dropped),
        )

    # ----- helpers -------------------------------------------------------------------------

    def _expect(self, expected: _Step) -> None:
        if self._step is not expected:
            raise ProtocolStateError(
                f"{expected.value}() called while the client of {self.me} expects {self._step.value}()"
            )

    def _advance(self, expected: _Step, following: _Step) -> None:
        self._expect(expected)
        self._step = following

    def _require(self, alive: int, step: str, what: str) -> None:
        if alive < self.config.threshold:
            raise SecAggAbort(
                f"secure aggregation aborted at {step}: only {alive} {what}; the threshold is {self.config.threshold}"
            )

    def _verify_advert(self, advert: KeyAdvertisement) -> None:
        if not self.config.is_member(advert.silo) or advert.silo not in self._verify_keys:
            raise SignatureRejected(f"share keys: an advertisement from {advert.silo!r}, which has no registered key")
        signed = KeyAdvertisement.signed_bytes(self.config, advert.silo, advert.encryption_key, advert.masking_key)
        try:
            self._verify_keys[advert.silo].verify(advert.signature, signed)
        except SignatureError as error:
            raise SignatureRejected(
                f"share keys: the key advertisement of {advert.silo} is not signed by its registered key"
            ) from error

    def _agree(self, key: AgreementKey, peer_public: bytes, peer: SiloName) -> bytes:
        try:
            return key.exchange(peer_public)
        except ValueError as error:
            raise SecAggError(f"the public key {peer} advertised is degenerate: {error}") from error

    def _share_key(self, peer: SiloName) -> bytes:
        secret = self._agree(self._encryption_key, self._adverts[peer].encryption_key, peer)
        return self.config.share_key(secret, self.me, peer)

    def _open(self, encrypted: EncryptedShare) -> tuple[Share, Share]:
        sender = encrypted.sender
        context = self.config.share_context(sender, self.me)
        try:
            plaintext = SharePlaintext.from_bytes(open_sealed(self._share_key(sender), encrypted.ciphertext, context))
        except DecryptionError as error:
            raise ShareRejected(
                f"receive shares: the share ciphertext from {sender} failed authentication (tampered, or not "
                f"encrypted by {sender} for {self.me} in this round)"
            ) from error
        except MalformedMessage as error:
            raise ShareRejected(f"receive shares: {sender} encrypted a malformed share: {error.reason}") from error
        if plaintext.sender != sender or plaintext.receiver != self.me:
            raise ShareRejected(
                f"receive shares: the share relayed from {sender} was written from {plaintext.sender} "
                f"to {plaintext.receiver}"
            )
        mine = self.config.x_of(self.me)
        if plaintext.seed_share.x != mine or plaintext.key_share.x != mine:
            raise ShareRejected(f"receive shares: {sender} sent shares for another silo's point")
        return plaintext.seed_share, plaintext.key_share
