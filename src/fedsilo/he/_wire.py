"""Byte framings of homomorphic mode's messages, every one bounded before it is read.

A frame is a magic tag, a part count and length-prefixed parts (little-endian u32). Counts
and lengths are checked against bounds the job's parameters fix before anything is
allocated; the parts themselves are SEAL objects (loaded only by ``_seal.load``), signed
claim bytes (parsed only by ``StrictMessage``), signatures, or names. Who calls it: the
sidecar and the aggregator, on both ends of every homomorphic message.

- an encrypted update (``SubmitUpdate``'s payload): the joint key's id, then the chunks.
  The update's signed ``UpdateMetadata`` carries this payload's digest, so the signature
  covers the key id and every chunk;
- a ceremony message (``AdvertiseKeys``): a silo's ``SignedShare``; the reply is the
  transcript, every ``SignedShare`` of the round;
- the decryption request (``GetEncryptedSum``): the silos whose updates are in the sum, then
  the summed chunks;
- a decryption share (``SubmitDecryptionShare``): signed claim, signature, one share per chunk.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ._aggregate import chunk_bound
from ._errors import CiphertextRejected, RejectionKind
from ._params import HEParameters
from ._signed import SignedShare

_COUNT = struct.Struct("<4sI")
_LENGTH = struct.Struct("<I")
#: Largest signed claim, signature or key id part (far above any honest one).
_SMALL_PART = 1 << 16
#: Most silos named in one message.
MAX_SILOS = 1000

UPDATE, SHARE, TRANSCRIPT, SUM, DECRYPTION = b"FHU1", b"FHK1", b"FHT1", b"FHS1", b"FHD1"


def pack(tag: bytes, parts: Sequence[bytes]) -> bytes:
    """A frame of ``parts`` under ``tag``."""
    out = [_COUNT.pack(tag, len(parts))]
    for part in parts:
        out.append(_LENGTH.pack(len(part)))
        out.append(part)
    return b"".join(out)


def unpack(tag: bytes, data: bytes, max_parts: int, max_part_bytes: int) -> list[bytes]:
    """The parts of a frame; ``MALFORMED`` for a wrong tag, too many or too large parts, or trailing bytes."""
    if len(data) < _COUNT.size:
        raise CiphertextRejected(RejectionKind.MALFORMED, "a frame shorter than its header")
    found, count = _COUNT.unpack_from(data)
    if found != tag:
        raise CiphertextRejected(RejectionKind.MALFORMED, f"a {found!r} frame where {tag!r} was expected")
    if count > max_parts:
        raise CiphertextRejected(RejectionKind.MALFORMED, f"{count} parts, more than the bound of {max_parts}")
    parts, offset = [], _COUNT.size
    for _ in range(count):
        if offset + _LENGTH.size > len(data):
            raise CiphertextRejected(RejectionKind.MALFORMED, "the frame ends inside a length")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        if length > max_part_bytes or offset + length > len(data):
            raise CiphertextRejected(RejectionKind.MALFORMED, f"a part of {length} bytes is out of bounds")
        parts.append(data[offset : offset + length])
        offset += length
    if offset != len(data):
        raise CiphertextRejected(RejectionKind.MALFORMED, f"{len(data) - offset} bytes after the last part")
    return parts


def update_bound(params: HEParameters, chunks: int) -> int:
    """The most bytes an encrypted update of ``chunks`` chunks may take on the wire."""
    return _COUNT.size + (chunks + 1) * (_LENGTH.size + chunk_bound(params)) + _SMALL_PART


def encode_update(key_id: str, chunks: Sequence[bytes]) -> bytes:
    """An encrypted update's payload: the key id, then the chunks."""
    return pack(UPDATE, [key_id.encode(), *chunks])


def decode_update(params: HEParameters, data: bytes, key_id: str, chunks: int) -> list[bytes]:
    """The chunks of an encrypted update for ``key_id``; ``WRONG_KEY`` for another key, ``MALFORMED`` otherwise."""
    parts = unpack(UPDATE, data, chunks + 1, chunk_bound(params))
    if len(parts) != chunks + 1:
        raise CiphertextRejected(RejectionKind.MALFORMED, f"{len(parts) - 1} chunks where the vector needs {chunks}")
    if parts[0] != key_id.encode():
        raise CiphertextRejected(
            RejectionKind.WRONG_KEY, f"encrypted for key {parts[0][:71]!r}, the round's key is {key_id}"
        )
    return parts[1:]


def encode_share(message: SignedShare) -> bytes:
    """A ceremony message on the wire."""
    return pack(SHARE, [message.claim, message.signature, message.share])


def decode_share(params: HEParameters, data: bytes) -> SignedShare:
    """A ceremony message from the wire (its signature and share are checked by ``KeyCeremony``)."""
    claim, signature, share = _triple(SHARE, params, data)
    return SignedShare(claim, signature, share)


def encode_transcript(messages: Sequence[SignedShare]) -> bytes:
    """The transcript the hub relays: every ceremony message, each framed."""
    return pack(TRANSCRIPT, [encode_share(m) for m in messages])


def decode_transcript(params: HEParameters, data: bytes) -> list[SignedShare]:
    """The ceremony messages of a relayed transcript (each then verified by ``verified_joint_key``)."""
    return [decode_share(params, part) for part in unpack(TRANSCRIPT, data, MAX_SILOS, _share_bound(params) + 64)]


def encode_sum(contributors: Sequence[str], chunks: Sequence[bytes]) -> bytes:
    """The decryption request: the silos whose updates the sum holds, then the summed chunks."""
    return pack(SUM, [",".join(sorted(contributors)).encode(), *chunks])


def decode_sum(params: HEParameters, data: bytes, chunks: int) -> tuple[list[str], list[bytes]]:
    """The contributors and summed chunks of a decryption request."""
    parts = unpack(SUM, data, chunks + 1, chunk_bound(params))
    if len(parts) != chunks + 1:
        raise CiphertextRejected(
            RejectionKind.MALFORMED, f"a sum of {len(parts) - 1} chunks, the vector needs {chunks}"
        )
    try:
        names = parts[0].decode("ascii").split(",") if parts[0] else []
    except UnicodeDecodeError:
        raise CiphertextRejected(RejectionKind.MALFORMED, "contributor names are not ASCII") from None
    return names, parts[1:]


def sum_bound(params: HEParameters, chunks: int) -> int:
    """The most bytes a decryption request may take."""
    return update_bound(params, chunks) + MAX_SILOS * 254


def encode_decryption(claim: bytes, signature: bytes, shares: Sequence[bytes]) -> bytes:
    """A decryption share on the wire: the signed claim, its signature, one share per chunk."""
    return pack(DECRYPTION, [claim, signature, pack(DECRYPTION, shares)])


def decode_decryption(params: HEParameters, data: bytes, chunks: int) -> tuple[bytes, bytes, bytes, list[bytes]]:
    """Claim, signature, the signed share bytes, and the per-chunk shares of a decryption share."""
    claim, signature, body = unpack(DECRYPTION, data, 3, max(_SMALL_PART, decryption_bound(params, chunks)))
    if len(claim) > _SMALL_PART or len(signature) > _SMALL_PART:
        raise CiphertextRejected(RejectionKind.MALFORMED, "an oversized claim or signature")
    shares = unpack(DECRYPTION, body, chunks, _share_bound(params))
    if len(shares) != chunks:
        raise CiphertextRejected(RejectionKind.MALFORMED, f"{len(shares)} decryption shares for {chunks} chunks")
    return claim, signature, body, shares


def decryption_bound(params: HEParameters, chunks: int) -> int:
    """The most bytes a decryption share may take."""
    return 2 * _SMALL_PART + _COUNT.size * 2 + chunks * (_LENGTH.size + _share_bound(params)) + 3 * _LENGTH.size


def _share_bound(params: HEParameters) -> int:
    """One polynomial (a public share or a decryption share) plus SEAL's header slack."""
    return params.poly_modulus_degree * 8 + 4096


def _triple(tag: bytes, params: HEParameters, data: bytes) -> tuple[bytes, bytes, bytes]:
    claim, signature, share = unpack(tag, data, 3, _share_bound(params))
    if len(claim) > _SMALL_PART or len(signature) > _SMALL_PART:
        raise CiphertextRejected(RejectionKind.MALFORMED, "an oversized claim or signature")
    return claim, signature, share
