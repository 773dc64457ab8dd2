"""Typed failures of homomorphic aggregation; the aggregator maps each kind to one reason code.

The core package does not import the policy package (the core packages are independent),
so it names its own kinds; ``fedsilo.aggregator`` turns a ``CiphertextRejected`` into a
``Refusal`` with the matching ``fedsilo.policy.Reason``.
"""

from __future__ import annotations

from enum import StrEnum


class RejectionKind(StrEnum):
    """Why a ciphertext chunk or ceremony message was refused."""

    #: Not a well-formed SEAL object for this job's parameters, out of bounds, or out of order.
    MALFORMED = "malformed"
    #: Encrypted for another joint key (another job, an older ceremony) than the one in force.
    WRONG_KEY = "wrong_key"
    #: A chunk, share or decryption share already received (same signed digest or index).
    REPLAYED = "replayed"


class HomomorphicError(Exception):
    """A homomorphic-aggregation step that cannot go on; the text says which and why."""


class CiphertextRejected(HomomorphicError):
    """One piece of input from another party refused, with its kind and an explanation."""

    def __init__(self, kind: RejectionKind, explanation: str) -> None:
        self.kind = kind
        self.explanation = explanation
        super().__init__(f"{kind}: {explanation}")
