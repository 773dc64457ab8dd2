"""The messages of one secure-aggregation round, each with a canonical byte encoding.

Client (``_client``) and server (``_server``) exchange these objects; the sidecar and the
aggregator carry ``to_bytes()`` in protobuf ``bytes`` fields and rebuild the objects with
``from_bytes()``, which parses strictly (see ``_wire``). Encoding is canonical: one object
has exactly one byte form, so bytes can be signed and compared.

Round 0 ``KeyAdvertisement`` (client) and ``KeyBroadcast`` (server);
round 1 ``ShareKeys`` (client) and ``ShareDelivery`` (server) of ``EncryptedShare``;
round 2 ``MaskedChunk`` (client);
round 3 ``UnmaskRequest`` (server) and ``SurvivorConfirmation`` (client);
round 4 ``Confirmations`` (server) and ``UnmaskResponse`` (client).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt

from fedsilo.api import SiloName
from fedsilo.identity import StreamingDigest

from ._config import MAX_SILOS, SecAggConfig
from ._errors import MalformedMessage
from ._shamir import SHARE_BYTES, ShamirError, Share
from ._wire import Kind, Reader, Writer

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
COMMITMENT_BYTES = 32
# A share plaintext (two names, two shares) sealed with AES-GCM is about 700 bytes.
_MAX_CIPHERTEXT_BYTES = 1024


def _check_count(count: int, what: str) -> None:
    if count > MAX_SILOS:
        raise MalformedMessage(f"{what} lists {count} entries, more than {MAX_SILOS} silos")


def _check_sorted_names(names: Sequence[str], what: str) -> None:
    # Canonical lists are sorted and duplicate-free, so one set has one byte form.
    if any(a >= b for a, b in itertools.pairwise(names)):
        raise MalformedMessage(f"{what} must be sorted and without duplicates")


def _read_share(reader: Reader) -> Share:
    try:
        return Share.from_bytes(reader.fixed(SHARE_BYTES))
    except ShamirError as error:
        raise MalformedMessage(f"malformed share: {error.reason}") from error


# ----- round 0: advertise keys ----------------------------------------------------------------


@dataclass(frozen=True)
class KeyAdvertisement:
    """A silo's two X25519 public keys for one round, signed with its Ed25519 identity key.

    ``encryption_key`` (c_pk) encrypts shares between silos; ``masking_key`` (s_pk) agrees
    the pairwise masks.
    """

    silo: SiloName
    encryption_key: bytes
    masking_key: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.encryption_key) != PUBLIC_KEY_BYTES or len(self.masking_key) != PUBLIC_KEY_BYTES:
            raise MalformedMessage(f"advertised public keys have {PUBLIC_KEY_BYTES} bytes")
        if len(self.signature) != SIGNATURE_BYTES:
            raise MalformedMessage(f"an advertisement signature has {SIGNATURE_BYTES} bytes")

    @staticmethod
    def signed_bytes(config: SecAggConfig, silo: SiloName, encryption_key: bytes, masking_key: bytes) -> bytes:
        """What the signature covers: both keys, bound to the job, the round and the silo."""
        return config.context("advertise", silo) + encryption_key + masking_key

    def _write(self, writer: Writer) -> None:
        writer.text(self.silo)
        writer.fixed(self.encryption_key)
        writer.fixed(self.masking_key)
        writer.fixed(self.signature)

    @classmethod
    def _read(cls, reader: Reader) -> Self:
        return cls(
            SiloName(reader.text()),
            reader.fixed(PUBLIC_KEY_BYTES),
            reader.fixed(PUBLIC_KEY_BYTES),
            reader.fixed(SIGNATURE_BYTES),
        )

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        writer = Writer(Kind.KEY_ADVERTISEMENT)
        self._write(writer)
        return writer.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse ``to_bytes`` output strictly."""
        reader = Reader(data, Kind.KEY_ADVERTISEMENT)
        advert = cls._read(reader)
        reader.finish()
        return advert


@dataclass(frozen=True)
class KeyBroadcast:
    """Every advertisement the server accepted (the set U1), sorted by silo, sent to each of them."""

    adverts: tuple[KeyAdvertisement, ...]

    def __post_init__(self) -> None:
        _check_count(len(self.adverts), "a key broadcast")
        _check_sorted_names([a.silo for a in self.adverts], "a key broadcast's silos")

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        writer = Writer(Kind.KEY_BROADCAST)
        writer.u16(len(self.adverts))
        for advert in self.adverts:
            advert._write(writer)
        return writer.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse ``to_bytes`` output strictly."""
        reader = Reader(data, Kind.KEY_BROADCAST)
        adverts = tuple(KeyAdvertisement._read(reader) for _ in range(reader.u16()))
        reader.finish()
        return cls(adverts)


# ----- round 1: share keys ----------------------------------------------------------------------


@dataclass(frozen=True)
class SharePlaintext:
    """What one encrypted share holds: the sender's seed share and masking-key share for one receiver."""

    sender: SiloName
    receiver: SiloName
    seed_share: Share
    key_share: Share

    def to_bytes(self) -> bytes:
        """Canonical bytes (encrypted before they leave the silo)."""
        writer = Writer(Kind.SHARE_PLAINTEXT)
        writer.text(self.sender)
        writer.text(self.receiver)
        writer.fixed(self.seed_share.to_bytes())
        writer.fixed(self.key_share.to_bytes())
        return writer.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse ``to_bytes`` output strictly."""
        reader = Reader(data, Kind.SHARE_PLAINTEXT)
        plaintext = cls(SiloName(reader.text()), SiloName(reader.text()), _read_share(reader), _read_share(reader))
        reader.finish()
        return plaintext


@dataclass(frozen=True)
class EncryptedShare:
    """A ``SharePlaintext`` sealed with AES-GCM for its receiver; the server relays it unread."""

    sender: SiloName
    receiver: SiloName
    ciphertext: bytes

    def __post_init__(self) -> None:
        if len(self.ciphertext) > _MAX_CIPHERTEXT_BYTES:
            raise MalformedMessage(f"a share ciphertext has at most {_MAX_CIPHERTEXT_BYTES} bytes")

    def _write(self, writer: Writer) -> None:
        writer.text(self.sender)
        writer.text(self.receiver)
        writer.blob(self.ciphertext)

    @classmethod
    def _read(cls, reader: Reader) -> Self:
        return cls(SiloName(reader.text()), SiloName(reader.text()), reader.blob(_MAX_CIPHERTEXT_BYTES))


def _write_shares(writer: Writer, shares: tuple[EncryptedShare, ...]) -> None:
    writer.u16(len(shares))
    for share in shares:
        share._write(writer)


def _read_shares(reader: Reader) -> tuple[EncryptedShare, ...]:
    return tuple(EncryptedShare._read(reader) for _ in range(reader.u16()))


@dataclass(frozen=True)
class ShareKeys:
    """A silo's encrypted shares for every peer in U1, and a commitment to its self-mask seed.

    The commitment (SHA-256 of the seed, bound to job, round and silo) lets the server
    tell a correctly rebuilt seed from one rebuilt out of a wrong share.
    """

    silo: SiloName
    seed_commitment: bytes
    shares: tuple[EncryptedShare, ...]

    def __post_init__(self) -> None:
        if len(self.seed_commitment) != COMMITMENT_BYTES:
            raise MalformedMessage(f"a seed commitment has {COMMITMENT_BYTES} bytes")
        _check_count(len(self.shares), "share keys")
        _check_sorted_names([s.receiver for s in self.shares], "share receivers")

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        writer = Writer(Kind.SHARE_KEYS)
        writer.text(self.silo)
        writer.fixed(self.seed_commitment)
        _write_shares(writer, self.shares)
        return writer.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse ``to_bytes`` output strictly."""
        reader = Reader(data, Kind.SHARE_KEYS)
        message = cls(SiloName(reader.text()), reader.fixed(COMMITMENT_BYTES), _read_shares(reader))
        reader.finish()
        return message


@dataclass(frozen=True)
class ShareDelivery:
    """The shares addressed to one silo, one from each other silo in U2."""

    receiver: SiloName
    shares: tuple[EncryptedShare, ...]

    def __post_init__(self) -> None:
        _check_count(len(self.shares), "a share delivery")
        _check_sorted_names([s.sender for s in self.shares], "share senders")

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        writer = Writer(Kind.SHARE_DELIVERY)
        writer.text(self.receiver)
        _write_shares(writer, self.shares)
        return writer.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse ``to_bytes`` output strictly."""
        reader = Reader(data, Kind.SHARE_DELIVERY)
        message = cls(SiloName(reader.text()), _read_shares(reader))
        reader.finish()
        return message


# ----- round 2: masked input -------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MaskedChunk:
    """Words ``offset .. offset + len(words) - 1`` of one silo's masked vector.

    On the wire: a short header, then the words as raw little-endian uint32, so the
    payload costs 4 bytes per value. ``from_bytes`` returns a read-only view of the bytes
    it was given, without copying.
    """

    silo: SiloName
    offset: int
    words: npt.NDArray[np.uint32]

    def __post_init__(self) -> None:
        if self.words.dtype != np.dtype("<u4") or self.words.ndim != 1:
            raise MalformedMessage("a masked chunk holds a flat little-endian uint32 array")
        if not 0 <= self.offset < 2**63:
            raise MalformedMessage(f"chunk offset {self.offset} is out of range")

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        writer = Writer(Kind.MASKED_CHUNK)
        writer.text(self.silo)
        writer.u64(self.offset)
        writer.u32(self.words.size)
        writer.fixed(self.words.data)
        return writer.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse ``to_bytes`` output strictly."""
        reader = Reader(data, Kind.MASKED_CHUNK)
        silo, offset, count = SiloName(reader.text()), reader.u64(), reader.u32()
        payload = reader.rest()
        if len(payload) != 4 * count:
            raise MalformedMessage(f"masked chunk: header says {count} words, payload has {len(payload)} bytes")
        return cls(silo, offset, np.frombuffer(payload, dtype="<u4"))


# ----- round 3: consistency check ---------------------------------------------------------------


@dataclass(frozen=True)
class UnmaskRequest:
    """The server's verdict on the input step: whose inputs count (U3), and who dropped (U2 minus U3).

    Survivors will reveal seed shares of ``survivors`` and masking-key shares of ``dropped``;
    a silo is never in both.
    """

    survivors: tuple[SiloName, ...]
    dropped: tuple[SiloName, ...]

    def __post_init__(self) -> None:
        for names, what in ((self.survivors, "survivors"), (self.dropped, "dropped silos")):
            _check_count(len(names), what)
            _check_sorted_names(names, what)

    def signed_bytes(self, config: SecAggConfig) -> bytes:
        """What a survivor signs to confirm it saw this request: the request, bound to job and round."""
        return config.context("consistency-check") + self.to_bytes()

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        writer = Writer(Kind.UNMASK_REQUEST)
        writer.texts(self.survivors)
        writer.texts(self.dropped)
        return writer.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse ``to_bytes`` output strictly."""
        reader = Reader(data, Kind.UNMASK_REQUEST)
        survivors = tuple(SiloName(s) for s in reader.texts())
        dropped = tuple(SiloName(s) for s in reader.texts())
        reader.finish()
        return cls(survivors, dropped)


@dataclass(frozen=True)
class SurvivorConfirmation:
    """A survivor's Ed25519 signature over the ``UnmaskRequest`` it received."""

    silo: SiloName
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.signature) != SIGNATURE_BYTES:
            raise MalformedMessage(f"a confirmation signature has {SIGNATURE_BYTES} bytes")

    def _write(self, writer: Writer) -> None:
        writer.text(self.silo)
        writer.fixed(self.signature)

    @classmethod
    def _read(cls, reader: Reader) -> Self:
        return cls(SiloName(reader.text()), reader.fixed(SIGNATURE_BYTES))

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        writer = Writer(Kind.SURVIVOR_CONFIRMATION)
        self._write(writer)
        return writer.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse ``to_bytes`` output strictly."""
        reader = Reader(data, Kind.SURVIVOR_CONFIRMATION)
        confirmation = cls._read(reader)
        reader.finish()
        return confirmation


# ----- round 4: unmasking -----------------------------------------------------------------------


@dataclass(frozen=True)
class Confirmations:
    """Every survivor's confirmation the server collected (U4), sorted by silo, sent to each of them."""

    confirmations: tuple[SurvivorConfirmation, ...]

    def __post_init__(self) -> None:
        _check_count(len(self.confirmations), "confirmations")
        _check_sorted_names([c.silo for c in self.confirmations], "confirming silos")

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        writer = Writer(Kind.CONFIRMATIONS)
        writer.u16(len(self.confirmations))
        for confirmation in self.confirmations:
            confirmation._write(writer)
        return writer.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse ``to_bytes`` output strictly."""
        reader = Reader(data, Kind.CONFIRMATIONS)
        confirmations = tuple(SurvivorConfirmation._read(reader) for _ in range(reader.u16()))
        reader.finish()
        return cls(confirmations)


@dataclass(frozen=True)
class RevealedShare:
    """A survivor's share of one silo's secret (a seed or a masking key)."""

    owner: SiloName
    share: Share


def _write_revealed(writer: Writer, revealed: tuple[RevealedShare, ...]) -> None:
    writer.u16(len(revealed))
    for item in revealed:
        writer.text(item.owner)
        writer.fixed(item.share.to_bytes())


def _read_revealed(reader: Reader) -> tuple[RevealedShare, ...]:
    return tuple(RevealedShare(SiloName(reader.text()), _read_share(reader)) for _ in range(reader.u16()))


@dataclass(frozen=True)
class UnmaskResponse:
    """A survivor's answer: its shares of the survivors' seeds and of the dropped silos' masking keys."""

    silo: SiloName
    seed_shares: tuple[RevealedShare, ...]
    key_shares: tuple[RevealedShare, ...]

    def __post_init__(self) -> None:
        for revealed, what in ((self.seed_shares, "seed shares"), (self.key_shares, "masking-key shares")):
            _check_count(len(revealed), what)
            _check_sorted_names([r.owner for r in revealed], f"owners of {what}")

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        writer = Writer(Kind.UNMASK_RESPONSE)
        writer.text(self.silo)
        _write_revealed(writer, self.seed_shares)
        _write_revealed(writer, self.key_shares)
        return writer.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse ``to_bytes`` output strictly."""
        reader = Reader(data, Kind.UNMASK_RESPONSE)
        message = cls(SiloName(reader.text()), _read_revealed(reader), _read_revealed(reader))
        reader.finish()
        return message


def masked_payload_digest(chunks: Iterable[MaskedChunk]) -> str:
    """``sha256:<hex>`` of a masked vector's words in order, computed chunk by chunk.

    The silo signs this in its update metadata; the server computes the same over the
    chunks it receives (``SecAggServer.finish_input``), so an altered payload is caught.
    """
    digest = StreamingDigest()
    for chunk in chunks:
        digest.update(chunk.words.data)
    return digest.text()
