"""The silo's side of secure aggregation (Bonawitz et al., CCS 2017), without I/O.

The sidecar drives one ``SecAggClient`` per round through the four steps: advertise two
X25519 keys (signed), send Shamir shares of its self-mask seed and masking key encrypted
to each peer, mask its fixed-point input, and finally reveal the shares the hub needs to
remove masks: self-mask shares of survivors, masking-key shares of dropped silos, and
never both for one silo.

With a sparse neighbour graph (SecAgg+, ``_graph.py``) each step is the same restricted to
the silo's share group: adverts, shares and pairwise masks only with its neighbours, the
threshold counted among them, and revelations only for the neighbours whose shares it holds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from fedsilo.identity import (
    AgreementKey,
    DecryptionError,
    SignatureError,
    Signer,
    VerifyKey,
    open_sealed,
    seal,
)

from ._config import SecAggConfig
from ._fixed_point import ENCODE_SLICE, check_weight, encode_into
from ._masks import MaskStreams, Sign
from ._messages import Advert, SecAggAbort, SecAggError, b64, dump, load, unb64
from ._shamir import Share, split

SEED_BYTES = 32


class SecAggClient:
    """One silo in one round."""

    def __init__(self, config: SecAggConfig, me: str, signing_key: Signer, peer_keys: Mapping[str, VerifyKey]) -> None:
        if me not in config.silos:
            raise ValueError(f"{me} is not a silo of this round")
        self.config = config
        self.me = me
        self._signing_key = signing_key
        self._peer_keys = dict(peer_keys)
        self._encryption_key = AgreementKey.generate()
        self._masking_key = AgreementKey.generate()
        self._seed = os.urandom(SEED_BYTES)
        self._adverts: dict[str, Advert] = {}
        self._ciphertexts: dict[str, bytes] = {}
        self._own_shares: tuple[Share, Share] | None = None
        self._unmasked = False

    # ----- step 0: advertise keys ----------------------------------------------------------

    def advertise(self) -> bytes:
        """This silo's signed public keys."""
        c = self.config
        encryption, masking = self._encryption_key.public_bytes(), self._masking_key.public_bytes()
        signature = self._signing_key.sign(Advert.signed_bytes(c.job, c.round, self.me, encryption, masking))
        return dump("advertise", {"advert": Advert(self.me, encryption, masking, signature).to_dict()})

    def receive_adverts(self, data: bytes) -> None:
        """Every peer's keys, each signature checked against the peer's registered key."""
        document = load(data, "adverts")
        adverts = [Advert.from_dict(a) for a in document["adverts"]]
        c = self.config
        group = c.graph.share_group(self.me) | {self.me}
        for advert in adverts:
            key = self._peer_keys.get(advert.silo)
            if key is None or advert.silo not in c.silos:
                raise SecAggError(f"advertisement from unknown silo {advert.silo!r}")
            if advert.silo not in group:
                raise SecAggError(f"advertisement from {advert.silo}, which is not a neighbour of this silo")
            try:
                key.verify(
                    advert.signature,
                    Advert.signed_bytes(c.job, c.round, advert.silo, advert.encryption_key, advert.masking_key),
                )
            except SignatureError as error:
                raise SecAggError(f"advertisement of {advert.silo} is not signed by its registered key") from error
            self._adverts[advert.silo] = advert
        if self.me not in self._adverts:
            raise SecAggError("the hub left this silo's own advertisement out")
        holders = len(self._adverts.keys() & c.graph.share_group(self.me))
        if holders < c.threshold:
            raise SecAggAbort(
                f"only {holders} of this silo's share holders advertised keys; the threshold is {c.threshold}"
            )

    # ----- step 1: share keys ----------------------------------------------------------------

    def share_keys(self) -> bytes:
        """Shares of the self-mask seed and the masking key, encrypted to each peer."""
        c = self.config
        members = sorted(self._adverts.keys() & c.graph.share_group(self.me), key=c.x_of)
        xs = [c.x_of(s) for s in members]
        seed_shares = split(self._seed, xs, c.threshold)
        key_shares = split(self._masking_key.private_bytes(), xs, c.threshold)
        mine = c.x_of(self.me)
        if mine in seed_shares:  # the complete graph keeps a share of its own secrets in each silo
            self._own_shares = (seed_shares[mine], key_shares[mine])
        ciphertexts = {}
        for peer in members:
            if peer == self.me:
                continue
            plaintext = dump(
                "share",
                {
                    "from": self.me,
                    "to": peer,
                    "seed_share": b64(seed_shares[c.x_of(peer)].to_bytes()),
                    "key_share": b64(key_shares[c.x_of(peer)].to_bytes()),
                },
            )
            ciphertexts[peer] = b64(seal(self._share_key(peer), plaintext, self._associated(self.me, peer)))
        return dump("shares", {"silo": self.me, "ciphertexts": ciphertexts})

    def receive_shares(self, data: bytes) -> None:
        """The ciphertexts addressed to this silo; their senders form the set U2."""
        document = load(data, "delivery")
        ciphertexts = document["ciphertexts"]
        if not isinstance(ciphertexts, dict):
            raise SecAggError("share delivery is malformed")
        for sender, text in ciphertexts.items():
            if sender not in self._adverts or sender == self.me:
                raise SecAggError(f"share ciphertext from {sender!r}, which did not advertise keys")
            self._ciphertexts[sender] = unb64(text, "share ciphertext")
        holders = len((self._ciphertexts.keys() | {self.me}) & self.config.graph.share_group(self.me))
        if holders < self.config.threshold:
            raise SecAggAbort(
                f"only {holders} of this silo's share holders shared keys; the threshold is {self.config.threshold}"
            )

    # ----- step 2: masked input --------------------------------------------------------------

    def masked_input(self, values: npt.NDArray[np.floating], weight: int) -> npt.NDArray[np.uint32]:
        """``encode(values, weight) + PRG(seed) + sum of +-PRG(pairwise key)`` mod 2^32.

        Encoded and masked one slice at a time into the one output vector: beside the update
        and the words it sends, the silo holds one slice of temporaries, whatever the model's size.
        """
        c = self.config
        if values.size + 1 != c.vector_length:
            raise ValueError(f"update has {values.size} values, the round expects {c.vector_length - 1}")
        check_weight(weight, c.clip_range, c.fractional_bits)
        words = np.empty(c.vector_length, dtype=np.uint32)
        words[-1] = weight
        masks = self.mask_streams()
        for start in range(0, c.vector_length, ENCODE_SLICE):
            piece = words[start : start + ENCODE_SLICE]
            stop = min(start + piece.size, values.size)
            if start < stop:
                encode_into(values[start:stop], weight, c.clip_range, c.fractional_bits, words[start:stop])
            masks.apply(piece)
        return words

    def mask_words(self, words: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
        """``words + PRG(seed) + sum of +-PRG(pairwise key)`` mod 2^32, in place.

        Any encoding's words: fixed point, or a compressed round's levels, whose sum is then
        read mod ``2^m`` (the masks reduce mod ``2^m`` as well, so the low ``m`` bits of each
        masked word are as uniformly masked as the whole word).
        """
        c = self.config
        if words.dtype != np.uint32 or words.shape != (c.vector_length,):
            raise ValueError(f"the round masks {c.vector_length} uint32 words")
        self.mask_streams().apply(words)
        return words

    def mask_streams(self) -> MaskStreams:
        """This silo's masks for the round, to apply to its ``vector_length`` words in order, piece by piece.

        The caller masks word 0 onwards, each piece following the last (``MaskStreams``), so a
        vector can be masked while it is encoded or packed instead of as one more whole copy.
        """
        c = self.config
        # The lower-named silo of a pair adds their pairwise mask, the higher one subtracts it.
        masks: list[tuple[bytes, Sign]] = [(self._seed, 1)]
        for peer in sorted(self._ciphertexts):
            key = c.pairwise_key(self._masking_key.exchange(self._adverts[peer].masking_key), self.me, peer)
            masks.append((key, 1 if self.me < peer else -1))
        return MaskStreams(masks, c.chunk_words)

    # ----- step 3: unmasking -----------------------------------------------------------------

    def unmask(self, data: bytes) -> bytes:
        """Reveal seed shares of survivors and key shares of dropped silos, never both for one."""
        c = self.config
        document = load(data, "unmask")
        survivors, dropped = document["survivors"], document["dropped"]
        if not isinstance(survivors, list) or not isinstance(dropped, list):
            raise SecAggError("unmask request is malformed")
        if set(survivors) & set(dropped):
            raise SecAggError("the hub asked for both shares of one silo; refusing (that would unmask its input)")
        if self._unmasked:
            raise SecAggError("this silo already answered an unmask request for this round")
        # Survivors among this silo's share group (all of them on the complete graph): the sum
        # must cover at least a threshold of them, as the complete graph's whole round must.
        group = c.graph.share_group(self.me) | {self.me}
        local_survivors = [s for s in survivors if s in group]
        if len(local_survivors) < c.threshold:
            raise SecAggAbort(
                f"only {len(local_survivors)} survivors among this silo's neighbours; the threshold is {c.threshold}"
            )
        if self.me not in survivors:
            raise SecAggError("the hub asks this silo to unmask but does not count it as a survivor")
        strangers = {*survivors, *dropped} - set(c.silos)
        if strangers:
            raise SecAggError(f"unmask request names silos that are not in this round: {sorted(strangers)}")
        known = set(self._ciphertexts) | {self.me}
        unknown = ({*survivors, *dropped} & group) - known
        if unknown:
            raise SecAggError(f"unmask request names silos that shared no keys with this silo: {sorted(unknown)}")
        shares = {peer: self._decrypt(peer) for peer in self._ciphertexts}
        if self._own_shares is not None:
            shares[self.me] = self._own_shares
        self._unmasked = True
        return dump(
            "reveal",
            {
                "silo": self.me,
                "seed_shares": {s: b64(shares[s][0].to_bytes()) for s in survivors if s in shares},
                "key_shares": {s: b64(shares[s][1].to_bytes()) for s in dropped if s in shares},
            },
        )

    # ----- helpers ------------------------------------------------------------------------------

    def _share_key(self, peer: str) -> bytes:
        secret = self._encryption_key.exchange(self._adverts[peer].encryption_key)
        return self.config.share_key(secret, self.me, peer)

    def _associated(self, sender: str, receiver: str) -> bytes:
        return self.config.context("share", sender, receiver)

    def _decrypt(self, sender: str) -> tuple[Share, Share]:
        try:
            plaintext = open_sealed(
                self._share_key(sender), self._ciphertexts[sender], self._associated(sender, self.me)
            )
        except DecryptionError as error:
            raise SecAggError(f"the share ciphertext from {sender} failed authentication (tampered)") from error
        document = load(plaintext, "share")
        if document["from"] != sender or document["to"] != self.me:
            raise SecAggError(
                f"the share ciphertext from {sender} is addressed from {document['from']} to {document['to']}"
            )
        return (
            Share.from_bytes(unb64(document["seed_share"], "seed share")),
            Share.from_bytes(unb64(document["key_share"], "key share")),
        )
