"""Homomorphic aggregation with multiparty (n-of-n) CKKS keys: the hub adds what it can never decrypt.

Each silo's sidecar holds one share of the job's secret key; the joint public key is the
sum of their public shares (``KeyShare``, ``JointKey``), assembled from a signed, relayed
transcript (``KeyCeremony``, ``verified_joint_key``). Sidecars encrypt their clipped,
weighted updates in chunks (``encrypt_update``), the hub adds the admitted chunks
(``EncryptedSum``), every silo makes a flooded decryption share (``decryption_share``) and
the hub fuses them into the sum (``fuse``). CKKS itself is Microsoft SEAL's, through
TenSEAL's ``sealapi`` (``_seal.py`` is the one module that touches it); docs/homomorphic.md
says why not OpenFHE, which parameters, what precision, and who sees what.
"""

from . import _wire as wire
from ._aggregate import CheckedChunks as CheckedChunks
from ._aggregate import EncryptedSum as EncryptedSum
from ._aggregate import chunk_bound as chunk_bound
from ._aggregate import decode_with as decode_with
from ._aggregate import decryption_share as decryption_share
from ._aggregate import encrypt_update as encrypt_update
from ._aggregate import fuse as fuse
from ._aggregate import load_chunk as load_chunk
from ._errors import CiphertextRejected as CiphertextRejected
from ._errors import HomomorphicError as HomomorphicError
from ._errors import RejectionKind as RejectionKind
from ._keys import JointKey as JointKey
from ._keys import KeyShare as KeyShare
from ._keys import common_polynomial as common_polynomial
from ._keys import key_id as key_id
from ._keys import round_seed as round_seed
from ._params import MAX_MODULUS_BITS_128 as MAX_MODULUS_BITS_128
from ._params import HEParameters as HEParameters
from ._signed import DecryptionShareClaim as DecryptionShareClaim
from ._signed import KeyCeremony as KeyCeremony
from ._signed import KeyShareClaim as KeyShareClaim
from ._signed import SeenChunks as SeenChunks
from ._signed import SignedShare as SignedShare
from ._signed import check_decryption_share as check_decryption_share
from ._signed import chunk_digest as chunk_digest
from ._signed import sign_decryption_share as sign_decryption_share
from ._signed import sign_key_share as sign_key_share
from ._signed import verified_joint_key as verified_joint_key

__all__ = [
    "MAX_MODULUS_BITS_128",
    "CheckedChunks",
    "CiphertextRejected",
    "DecryptionShareClaim",
    "EncryptedSum",
    "HEParameters",
    "HomomorphicError",
    "JointKey",
    "KeyCeremony",
    "KeyShare",
    "KeyShareClaim",
    "RejectionKind",
    "SeenChunks",
    "SignedShare",
    "check_decryption_share",
    "chunk_bound",
    "chunk_digest",
    "common_polynomial",
    "decode_with",
    "decryption_share",
    "encrypt_update",
    "fuse",
    "key_id",
    "load_chunk",
    "round_seed",
    "sign_decryption_share",
    "sign_key_share",
    "verified_joint_key",
    "wire",
]
