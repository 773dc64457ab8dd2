"""Domain messages that cross a trust boundary, with their canonical signed encoding.

The sidecar builds ``UpdateMetadata`` and ``EvaluationReport``, signs their canonical
bytes, and the aggregator parses the same bytes strictly (unknown or missing fields,
wrong types and non-finite numbers are refused) before it trusts any value in them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Self

from ._strict import MessageError, canonical_json, strict_json


def _check(document: dict[str, Any], spec: dict[str, tuple[type, ...]], what: str) -> None:
    unknown = sorted(set(document) - set(spec))
    missing = sorted(set(spec) - set(document))
    if unknown or missing:
        raise MessageError(f"{what}: unknown fields {unknown}, missing fields {missing}")
    for name, types in spec.items():
        value = document[name]
        if isinstance(value, bool) and bool not in types:
            raise MessageError(f"{what}.{name}: expected {types[0].__name__}, got a boolean")
        if not isinstance(value, types):
            raise MessageError(f"{what}.{name}: expected {types[0].__name__}, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise MessageError(f"{what}.{name}: must be finite")


@dataclass(frozen=True)
class _Signed:
    """Shared strict JSON round trip for signed messages."""

    _SPEC: ClassVar[dict[str, tuple[type, ...]]]

    def canonical_bytes(self) -> bytes:
        """The exact bytes the silo signs and the aggregator verifies."""
        return canonical_json(asdict(self))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Parse canonical bytes strictly; ``MessageError`` names what is wrong."""
        document = strict_json(data, what=cls.__name__)
        if not isinstance(document, dict):
            raise MessageError(f"{cls.__name__}: not a JSON object")
        _check(document, cls._SPEC, cls.__name__)
        return cls(**document)


_NUMBER = (float, int)
_OPTIONAL_NUMBER = (float, int, type(None))


@dataclass(frozen=True)
class UpdateMetadata(_Signed):
    """What a silo asserts about one update; signed with the silo's Ed25519 key."""

    job: str
    round: int
    silo: str
    nonce: str
    l2_norm: float
    num_samples: int
    vector_length: int
    dtype: str
    payload_digest: str
    epsilon_round: float | None
    mechanism: dict[str, Any] | None = field(default=None)

    _SPEC: ClassVar[dict[str, tuple[type, ...]]] = {
        "job": (str,),
        "round": (int,),
        "silo": (str,),
        "nonce": (str,),
        "l2_norm": _NUMBER,
        "num_samples": (int,),
        "vector_length": (int,),
        "dtype": (str,),
        "payload_digest": (str,),
        "epsilon_round": _OPTIONAL_NUMBER,
        "mechanism": (dict, type(None)),
    }


@dataclass(frozen=True)
class EvaluationReport(_Signed):
    """A silo's evaluation of the global model it received at the start of ``round``."""

    job: str
    round: int
    silo: str
    nonce: str
    loss: float
    accuracy: float
    num_samples: int

    _SPEC: ClassVar[dict[str, tuple[type, ...]]] = {
        "job": (str,),
        "round": (int,),
        "silo": (str,),
        "nonce": (str,),
        "loss": _NUMBER,
        "accuracy": _NUMBER,
        "num_samples": (int,),
    }


@dataclass(frozen=True)
class RoundPlan:
    """What the aggregator tells every silo about the next round."""

    round: int
    finished: bool = False
    evaluate_only: bool = False
    fit_config: dict[str, Any] = field(default_factory=dict)
    aggregation: str = "masked"
    fractional_bits: int = 0
    threshold: int = 0
    participants: tuple[str, ...] = ()
    model_digest: str = ""
    vector_length: int = 0
    failure: str = ""


@dataclass(frozen=True)
class PolicyVerdict:
    """The aggregator's answer to one update or report."""

    accepted: bool
    reasons: tuple[str, ...] = ()
    policy_revision: str = ""
