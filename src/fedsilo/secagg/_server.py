"""The hub's side of secure aggregation (Bonawitz et al., CCS 2017), without I/O.

It relays key advertisements and encrypted shares, adds masked inputs into one running
uint32 sum (memory is one model, whatever the number of silos), and after the input step
reconstructs, from at least ``threshold`` survivors' revelations, the self-mask seeds of
counted silos and the masking keys of silos that dropped or were denied, and removes their
masks chunk by chunk. It never holds a single silo's unmasked input.

With a sparse neighbour graph (SecAgg+, ``_graph.py``) it relays to each silo only its
neighbours' adverts and ciphertexts, reconstructs each secret from the shares of the
owner's surviving neighbours, and removes a dropped silo's pairwise masks with its
neighbours only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from fedsilo.identity import AgreementKey, SignatureError, VerifyKey

from ._config import SecAggConfig
from ._fixed_point import decode_sum
from ._masks import Sign, apply_masks
from ._messages import Advert, SecAggAbort, SecAggError, dump, load, unb64
from ._shamir import ShamirError, Share, reconstruct

_SEED_BYTES = 32
_KEY_BYTES = 32


class SecAggServer:
    """The hub in one round."""

    def __init__(self, config: SecAggConfig, verify_keys: Mapping[str, VerifyKey]) -> None:
        self.config = config
        self._keys = dict(verify_keys)
        self._adverts: dict[str, Advert] = {}
        self._shared: set[str] = set()
        self._sum = np.zeros(config.vector_length, dtype=np.uint32)
        self._counted: set[str] = set()
        self._excluded: dict[str, str] = {}
        self._result: npt.NDArray[np.uint32] | None = None

    # ----- step 0 ----------------------------------------------------------------------------

    def advertise(self, posted: Mapping[str, bytes]) -> dict[str, bytes]:
        """Check every advertisement's signature; broadcast the valid ones to their senders."""
        c = self.config
        for silo, data in posted.items():
            try:
                advert = Advert.from_dict(load(data, "advertise")["advert"])
                if advert.silo != silo:
                    raise SecAggError(f"advertisement names {advert.silo}, sent by {silo}")
                self._keys[silo].verify(
                    advert.signature,
                    Advert.signed_bytes(c.job, c.round, silo, advert.encryption_key, advert.masking_key),
                )
            except (SecAggError, SignatureError, KeyError) as error:
                self._excluded[silo] = f"advertise: {error}"
                continue
            self._adverts[silo] = advert
        self._require(len(self._adverts), "advertising keys")
        if c.graph.complete:
            broadcast = dump("adverts", {"adverts": [self._adverts[s].to_dict() for s in sorted(self._adverts)]})
            return {silo: broadcast for silo in self._adverts}
        return {
            silo: dump(
                "adverts",
                {
                    "adverts": [
                        self._adverts[s].to_dict() for s in sorted(self._adverts.keys() & (self._group(silo) | {silo}))
                    ]
                },
            )
            for silo in self._adverts
        }

    # ----- step 1 ----------------------------------------------------------------------------

    def share_keys(self, posted: Mapping[str, bytes]) -> dict[str, bytes]:
        """Route each silo's encrypted shares to their recipients."""
        bundles: dict[str, dict[str, str]] = {}
        for silo, data in posted.items():
            if silo not in self._adverts:
                continue
            try:
                document = load(data, "shares")
                ciphertexts = document["ciphertexts"]
                if document["silo"] != silo or not isinstance(ciphertexts, dict):
                    raise SecAggError("share bundle is malformed")
                if set(ciphertexts) != (self._adverts.keys() & self._group(silo)) - {silo}:
                    raise SecAggError("share bundle is not addressed to exactly the neighbours that advertised keys")
                for text in ciphertexts.values():
                    unb64(text, "share ciphertext")
            except SecAggError as error:
                self._excluded[silo] = f"share keys: {error.reason}"
                continue
            bundles[silo] = ciphertexts
        self._shared = set(bundles)
        self._require(len(self._shared), "sharing keys")
        mailboxes = {
            receiver: {sender: bundle[receiver] for sender, bundle in bundles.items() if receiver in bundle}
            for receiver in self._shared
        }
        return {receiver: dump("delivery", {"ciphertexts": box}) for receiver, box in mailboxes.items()}

    # ----- step 2 ----------------------------------------------------------------------------

    def add_input(self, silo: str, masked: npt.NDArray[np.uint32]) -> None:
        """Count a silo's whole masked input at once (after the gate allowed it): added into the running sum."""
        self._check_input(silo)
        if masked.dtype != np.uint32 or masked.shape != self._sum.shape:
            raise SecAggError(f"masked input must be {self._sum.size} uint32 values")
        self.add_words(0, masked)
        self._counted.add(silo)

    def add_words(self, offset: int, words: npt.NDArray[np.uint32], sign: Sign = 1) -> None:
        """``sum[offset:] += sign * words`` mod 2^32: a piece of an input as it arrives, or taken out again.

        The caller (the aggregator's ``StreamedInputs``) answers for which silo the words are
        and takes out exactly what it added for a silo that is not counted in the end; the sum
        is only unmasked once every such silo's words are out.
        """
        if words.dtype != np.uint32 or words.ndim != 1 or not 0 <= offset <= self._sum.size - words.size:
            raise SecAggError(f"{words.size} words at offset {offset} do not fit the {self._sum.size}-word sum")
        target = self._sum[offset : offset + words.size]
        (np.add if sign == 1 else np.subtract)(target, words, out=target)

    def count_input(self, silo: str) -> None:
        """Count a silo whose input was added piece by piece (``add_words``) once the gate allowed it."""
        self._check_input(silo)
        self._counted.add(silo)

    def _check_input(self, silo: str) -> None:
        if silo not in self._shared:
            raise SecAggError(f"{silo} did not share keys in this round; its input cannot be unmasked")
        if silo in self._counted:
            raise SecAggError(f"{silo} already sent its input")

    def exclude(self, silo: str, reason: str) -> None:
        """Leave ``silo``'s input out (denied, invalid, or never sent); its masks are removed later."""
        if silo in self._counted:
            raise SecAggError(f"{silo}'s input is already in the sum")
        self._excluded[silo] = reason

    # ----- step 3 ----------------------------------------------------------------------------

    def unmask_request(self) -> bytes:
        """Ask survivors for seed shares of counted silos and key shares of the others in U2."""
        self._require(len(self._counted), "the input step")
        dropped = sorted(self._shared - self._counted)
        return dump("unmask", {"survivors": sorted(self._counted), "dropped": dropped})

    def unmask(self, posted: Mapping[str, bytes]) -> None:
        """Reconstruct seeds and keys from the revealed shares and remove every mask."""
        c = self.config
        dropped = self._shared - self._counted
        seed_shares: dict[str, list[Share]] = {s: [] for s in self._counted}
        # A dropped silo none of whose neighbours was counted left no pairwise mask in the sum.
        key_shares: dict[str, list[Share]] = {s: [] for s in dropped if self._counted & c.graph.peers(s)}
        for silo, data in posted.items():
            if silo not in self._counted:
                continue
            group = self._group(silo)
            try:
                document = load(data, "reveal")
                if document["silo"] != silo:
                    raise SecAggError("revelation names another silo")
                if (
                    set(document["seed_shares"]) != self._counted & group
                    or set(document["key_shares"]) != dropped & group
                ):
                    raise SecAggError("revelation does not answer the request")
                for owner, text in document["seed_shares"].items():
                    seed_shares[owner].append(Share.from_bytes(unb64(text, "seed share")))
                for owner, text in document["key_shares"].items():
                    key_shares[owner].append(Share.from_bytes(unb64(text, "key share")))
            except (SecAggError, ShamirError) as error:
                self._excluded.setdefault(silo, f"unmask: {error}")
        responders = {len(v) for v in seed_shares.values()} | {len(v) for v in key_shares.values()}
        self._require(min(responders), "unmasking")
        try:
            seeds = {s: reconstruct(v, c.threshold, _SEED_BYTES) for s, v in seed_shares.items()}
            keys = {
                s: AgreementKey.from_private_bytes(reconstruct(v, c.threshold, _KEY_BYTES))
                for s, v in key_shares.items()
            }
        except ShamirError as error:
            raise SecAggAbort(f"shares do not reconstruct: {error}") from error
        self._remove_masks(seeds, keys)

    def _remove_masks(self, seeds: Mapping[str, bytes], dropped_keys: Mapping[str, AgreementKey]) -> None:
        c = self.config
        masks: list[tuple[bytes, Sign]] = [(seed, -1) for seed in seeds.values()]
        for gone, key in dropped_keys.items():
            for survivor in self._counted & c.graph.peers(gone):
                secret = key.exchange(self._adverts[survivor].masking_key)
                # The survivor added the mask if its name is lower, subtracted it otherwise.
                masks.append((c.pairwise_key(secret, gone, survivor), -1 if survivor < gone else 1))
        apply_masks(self._sum, masks, c.chunk_words)
        self._result = self._sum

    # ----- results ---------------------------------------------------------------------------

    def result(self) -> tuple[npt.NDArray[np.float64], int]:
        """The sum of counted silos' weighted inputs (decoded) and their total weight."""
        if self._result is None:
            raise SecAggError("the round has not been unmasked")
        return decode_sum(self._result, self.config.fractional_bits)

    def unmasked_words(self) -> npt.NDArray[np.uint32]:
        """The unmasked sum in Z_2^32 itself, read-only: no copy, for a caller that decodes it slice by slice."""
        if self._result is None:
            raise SecAggError("the round has not been unmasked")
        words = self._result.view()
        words.flags.writeable = False
        return words

    def raw_result(self) -> npt.NDArray[np.uint32]:
        """The unmasked sum in Z_2^32, for bit-exact checks."""
        if self._result is None:
            raise SecAggError("the round has not been unmasked")
        return self._result.copy()

    @property
    def counted(self) -> frozenset[str]:
        """Silos whose inputs are in the sum."""
        return frozenset(self._counted)

    @property
    def excluded(self) -> dict[str, str]:
        """Silos left out, with the reason."""
        return dict(self._excluded)

    def _group(self, silo: str) -> frozenset[str]:
        return self.config.graph.share_group(silo)

    def _require(self, alive: int, step: str) -> None:
        if alive < self.config.threshold:
            raise SecAggAbort(
                f"secure aggregation aborted at {step}: {alive} silos remain, the threshold is "
                f"{self.config.threshold}; no input can be unmasked"
            )
