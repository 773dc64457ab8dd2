"""Secure aggregation: pairwise-masked sums with dropout recovery (Bonawitz et al., CCS 2017).

Sans-IO state machines for the silo (``SecAggClient``, driven by the sidecar) and the hub
(``SecAggServer``, driven by the aggregator). They exchange the message dataclasses below;
each has a canonical ``to_bytes()``/``from_bytes()`` so the services carry them in
protobuf ``bytes`` fields. Inputs are fixed-point encoded into Z_2^32 and masked with
AES-CTR keystreams keyed through X25519 and HKDF; self-mask seeds and masking keys are
Shamir-shared so the hub can remove the masks of silos that drop out (or are denied), and
only ever learns the sum of the survivors' inputs. ``run_local_round`` plays a whole round
in one process, for tests and benchmarks.
"""

from ._client import SecAggClient as SecAggClient
from ._config import DEFAULT_CHUNK_ELEMENTS as DEFAULT_CHUNK_ELEMENTS
from ._config import SecAggConfig as SecAggConfig
from ._errors import MalformedMessage as MalformedMessage
from ._errors import PayloadRejected as PayloadRejected
from ._errors import ProtectedSecretRequest as ProtectedSecretRequest
from ._errors import ProtocolStateError as ProtocolStateError
from ._errors import ReconstructionFailed as ReconstructionFailed
from ._errors import SecAggAbort as SecAggAbort
from ._errors import SecAggError as SecAggError
from ._errors import ShareRejected as ShareRejected
from ._errors import SignatureRejected as SignatureRejected
from ._fixed_point import FixedPointError as FixedPointError
from ._fixed_point import choose_fractional_bits as choose_fractional_bits
from ._fixed_point import decode_sum as decode_sum
from ._fixed_point import encode as encode
from ._local import Dropout as Dropout
from ._local import DropPoint as DropPoint
from ._local import LocalRound as LocalRound
from ._local import run_local_round as run_local_round
from ._messages import Confirmations as Confirmations
from ._messages import EncryptedShare as EncryptedShare
from ._messages import KeyAdvertisement as KeyAdvertisement
from ._messages import KeyBroadcast as KeyBroadcast
from ._messages import MaskedChunk as MaskedChunk
from ._messages import RevealedShare as RevealedShare
from ._messages import ShareDelivery as ShareDelivery
from ._messages import ShareKeys as ShareKeys
from ._messages import SurvivorConfirmation as SurvivorConfirmation
from ._messages import UnmaskRequest as UnmaskRequest
from ._messages import UnmaskResponse as UnmaskResponse
from ._messages import masked_payload_digest as masked_payload_digest
from ._server import AggregateResult as AggregateResult
from ._server import SecAggServer as SecAggServer
from ._shamir import ShamirError as ShamirError
from ._shamir import Share as Share
from ._shamir import reconstruct as reconstruct
from ._shamir import split as split

__all__ = [
    "DEFAULT_CHUNK_ELEMENTS",
    "AggregateResult",
    "Confirmations",
    "DropPoint",
    "Dropout",
    "EncryptedShare",
    "FixedPointError",
    "KeyAdvertisement",
    "KeyBroadcast",
    "LocalRound",
    "MalformedMessage",
    "MaskedChunk",
    "PayloadRejected",
    "ProtectedSecretRequest",
    "ProtocolStateError",
    "ReconstructionFailed",
    "RevealedShare",
    "SecAggAbort",
    "SecAggClient",
    "SecAggConfig",
    "SecAggError",
    "SecAggServer",
    "ShamirError",
    "Share",
    "ShareDelivery",
    "ShareKeys",
    "ShareRejected",
    "SignatureRejected",
    "SurvivorConfirmation",
    "UnmaskRequest",
    "UnmaskResponse",
    "choose_fractional_bits",
    "decode_sum",
    "encode",
    "masked_payload_digest",
    "reconstruct",
    "run_local_round",
    "split",
]
