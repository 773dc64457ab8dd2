"""Attribution of signed messages: whose they are, and whether they were sent before.

Every update and evaluation report is parsed strictly and verified against the sending
silo's registered key before anything else reads it; its nonce goes into the silo's
ledger of used nonces, shared by both kinds so neither can be replayed as the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from fedsilo.identity import SignatureError, VerifyKey
from fedsilo.policy import Reason, Refusal
from fedsilo.protocol import MessageError, StrictMessage

M = TypeVar("M", bound=StrictMessage)


def verify_signed(keys: Mapping[str, VerifyKey], silo: str, data: bytes, signature: bytes, kind: type[M]) -> M:
    """Signed bytes from ``silo``, parsed as ``kind`` and verified with its registered key; raise ``Refusal``."""
    key = keys.get(silo)
    if key is None:
        raise Refusal(Reason.SILO_NOT_ENROLLED, f"{silo} is not registered for this job")
    try:
        claims = kind.parse(data)
    except MessageError as error:
        raise Refusal(Reason.METADATA_INVALID, str(error)) from None
    try:
        key.verify(signature, data)
    except SignatureError as error:
        raise AttributedRefusal(claims, Reason.SIGNATURE_INVALID, error.reason) from None
    signer = getattr(claims, "silo", silo)
    if signer != silo:
        raise AttributedRefusal(claims, Reason.IDENTITY_MISMATCH, f"signed for {signer}, sent by {silo}")
    return claims


class AttributedRefusal(Refusal):
    """A refusal of a message that parsed: the claims go on to the policy as facts."""

    def __init__(self, claims: StrictMessage, reason: Reason, explanation: str) -> None:
        super().__init__(reason, explanation)
        self.claims = claims


class SeenNonces:
    """Every nonce each silo has used in this job, updates and evaluation reports alike."""

    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {}

    def first_use(self, silo: str, nonce: str) -> bool:
        """Record ``nonce``; whether it was new for ``silo``."""
        seen = self._seen.setdefault(silo, set())
        if nonce in seen:
            return False
        seen.add(nonce)
        return True

    def count(self, silo: str) -> int:
        """How many nonces ``silo`` has used."""
        return len(self._seen.get(silo, ()))
