"""The signed documents of homomorphic mode: key-ceremony shares and encrypted-update claims.

Every message of the ceremony and every decryption share carries claims signed with the
silo's Ed25519 identity key (an encrypted update is signed by its ``UpdateMetadata``, whose
payload digest covers the joint key's id and every chunk, see ``_wire``). The hub checks them before it relays or adds anything, and
every silo checks every share of the ceremony itself before it trusts the joint key, so
the hub only relays: it signs nothing it cannot check and never holds a share.

Who calls it: the sidecar (``sign_key_share``, ``sign_decryption_share``, ``verified_joint_key``),
the aggregator (``KeyCeremony``, ``SeenChunks``, ``check_decryption_share``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field

from fedsilo.identity import SignatureError, Signer, VerifyKey
from fedsilo.protocol import MessageError, ObjectName, StrictMessage

from ._errors import CiphertextRejected, RejectionKind
from ._keys import JointKey, load_public_share, share_digest
from ._params import HEParameters

_Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]


def chunk_digest(chunk: bytes) -> str:
    """The digest of one ciphertext chunk, as signed claims name it."""
    return "sha256:" + hashlib.sha256(chunk).hexdigest()


class KeyShareClaim(StrictMessage):
    """What a silo signs for its public key share: the job, the ceremony's seed and the share's digest."""

    type: Literal["he_key_share"] = "he_key_share"
    job: ObjectName
    silo: ObjectName
    seed: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    share_digest: _Digest


@dataclass(frozen=True)
class SignedShare:
    """One ceremony message as relayed: the canonical claim bytes, their signature, the share."""

    claim: bytes
    signature: bytes
    share: bytes


def sign_key_share(key: Signer, job: str, silo: str, seed: bytes, share: bytes) -> SignedShare:
    """The sidecar's ceremony message for its public share."""
    claim = KeyShareClaim(job=job, silo=silo, seed=seed.hex(), share_digest=share_digest(share))
    body = claim.canonical_bytes()
    return SignedShare(body, key.sign(body), share)


def _checked_share(
    params: HEParameters, job: str, seed: bytes, message: SignedShare, keys: Mapping[str, VerifyKey]
) -> KeyShareClaim:
    """A ceremony message's claim after every check; raises ``SignatureError`` or ``CiphertextRejected``."""
    try:
        claim = KeyShareClaim.parse(message.claim)
    except MessageError as error:
        raise CiphertextRejected(RejectionKind.MALFORMED, f"key share claim: {error}") from None
    if claim.silo not in keys:
        raise SignatureError(f"silo {claim.silo} is not a silo of job {job}")
    keys[claim.silo].verify(message.signature, message.claim)
    if claim.job != job or claim.seed != seed.hex():
        raise CiphertextRejected(RejectionKind.WRONG_KEY, f"silo {claim.silo}'s share is for another job or ceremony")
    if claim.share_digest != share_digest(message.share):
        raise CiphertextRejected(RejectionKind.MALFORMED, f"silo {claim.silo}'s share does not match its signed digest")
    load_public_share(params, message.share)
    return claim


class KeyCeremony:
    """The hub's side of one job's key ceremony: check each signed share, then relay them all.

    The hub keeps only public shares and signatures; the transcript it relays is what every
    silo verifies itself. A second share from the same silo is refused (``REPLAYED``): a
    silo cannot swap its share after seeing others'.
    """

    def __init__(self, params: HEParameters, job: str, seed: bytes, keys: Mapping[str, VerifyKey]) -> None:
        self.params = params
        self.job = job
        self.seed = seed
        self._keys = dict(keys)
        self._messages: dict[str, SignedShare] = {}

    def submit(self, message: SignedShare, sender: str) -> None:
        """Check and keep the signed share ``sender`` posted (it must be its own, signed by it)."""
        claim = _checked_share(self.params, self.job, self.seed, message, self._keys)
        if claim.silo != sender:
            raise SignatureError(f"{sender} posted a share signed for {claim.silo}")
        if claim.silo in self._messages:
            raise CiphertextRejected(RejectionKind.REPLAYED, f"silo {claim.silo} already gave its share")
        self._messages[claim.silo] = message

    @property
    def missing(self) -> frozenset[str]:
        """Silos whose share has not arrived."""
        return frozenset(self._keys) - frozenset(self._messages)

    def transcript(self) -> list[SignedShare]:
        """Every signed share that arrived, in silo order: what the hub relays to each silo that gave one.

        A silo whose share did not arrive (or was refused) is simply not in the round's key.
        """
        return [self._messages[silo] for silo in sorted(self._messages)]


def verified_joint_key(
    params: HEParameters, job: str, seed: bytes, transcript: Sequence[SignedShare], keys: Mapping[str, VerifyKey]
) -> JointKey:
    """The joint key from a relayed transcript, after checking every share's signature and claims.

    Each silo runs this itself, with ``keys`` naming the silos it expects in the key: the
    transcript must hold exactly one validly signed share of each, so a hub cannot slip in a
    share of its own (it signs nothing a silo would accept) or leave out one it was given.
    """
    shares: dict[str, bytes] = {}
    for message in transcript:
        claim = _checked_share(params, job, seed, message, keys)
        if claim.silo in shares:
            raise CiphertextRejected(RejectionKind.REPLAYED, f"the transcript holds two shares of silo {claim.silo}")
        shares[claim.silo] = message.share
    if set(shares) != set(keys):
        missing = sorted(set(keys) - set(shares))
        raise CiphertextRejected(RejectionKind.WRONG_KEY, f"the transcript lacks the shares of {', '.join(missing)}")
    return JointKey(params, seed, shares)


class SeenChunks:
    """Digests of every chunk the hub has admitted in a job: a chunk sent twice is a replay.

    Fresh CKKS encryptions are randomized, so an honest silo never produces the same chunk
    twice; a copy of an earlier chunk (its own from an old round, or another silo's) is refused.
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def check(self, digests: Sequence[str]) -> None:
        """Raise ``REPLAYED`` if any digest was admitted before or repeats within ``digests``."""
        if len(set(digests)) != len(digests) or not self._seen.isdisjoint(digests):
            raise CiphertextRejected(RejectionKind.REPLAYED, "a ciphertext chunk was sent before")

    def admit(self, digests: Sequence[str]) -> None:
        """Remember the digests of an admitted update."""
        self._seen.update(digests)


class DecryptionShareClaim(StrictMessage):
    """What a silo signs for its decryption share: the round, the sum it decrypted and the share's digest."""

    type: Literal["he_decryption_share"] = "he_decryption_share"
    job: ObjectName
    round: Annotated[int, Field(ge=0, le=2**31)]
    silo: ObjectName
    sum_digest: _Digest
    share_digest: _Digest


def sign_decryption_share(
    key: Signer, job: str, round_number: int, silo: str, sum_digest: str, share: bytes
) -> tuple[bytes, bytes]:
    """The canonical claim bytes of a decryption share and their signature."""
    claim = DecryptionShareClaim(
        job=job, round=round_number, silo=silo, sum_digest=sum_digest, share_digest=chunk_digest(share)
    )
    body = claim.canonical_bytes()
    return body, key.sign(body)


def check_decryption_share(
    job: str,
    round_number: int,
    silo: str,
    sum_digest: str,
    verify_key: VerifyKey,
    claim: bytes,
    signature: bytes,
    share: bytes,
) -> None:
    """The hub's check of one decryption share: the silo's signature, then the round, the sum and the digest."""
    verify_key.verify(signature, claim)
    try:
        parsed = DecryptionShareClaim.parse(claim)
    except MessageError as error:
        raise CiphertextRejected(RejectionKind.MALFORMED, f"decryption share claim: {error}") from None
    if parsed.job != job or parsed.round != round_number or parsed.silo != silo:
        raise CiphertextRejected(
            RejectionKind.REPLAYED, f"the decryption share is for {parsed.job} round {parsed.round}"
        )
    if parsed.sum_digest != sum_digest:
        raise CiphertextRejected(RejectionKind.WRONG_KEY, "the decryption share is of another sum")
    if parsed.share_digest != chunk_digest(share):
        raise CiphertextRejected(RejectionKind.MALFORMED, "the decryption share does not match its signed digest")
