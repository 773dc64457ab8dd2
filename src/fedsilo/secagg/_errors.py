"""The secure-aggregation error hierarchy, raised by every other module of ``fedsilo.secagg``.

Every failed check raises; nothing returns False. The sidecar and the aggregator catch
``SecAggError`` and record ``reason`` (audit log, job status), so each reason names the
step, the silo and what was wrong.
"""

from __future__ import annotations


class SecAggError(Exception):
    """A secure-aggregation check failed; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class SecAggAbort(SecAggError):
    """Fewer silos than the threshold remain: the round cannot finish without risking an input."""


class MalformedMessage(SecAggError):
    """A message's bytes do not parse: wrong type, truncated, trailing data, out-of-range field."""


class ProtocolStateError(SecAggError):
    """A message or call that does not fit the current step (too early, too late, repeated)."""


class SignatureRejected(SecAggError):
    """A signed protocol message (key advertisement, survivor confirmation) did not verify."""


class ShareRejected(SecAggError):
    """An encrypted share failed authentication, or came from or for the wrong silo."""


class PayloadRejected(SecAggError):
    """A masked input is malformed, out of order, incomplete, or not the payload the silo signed."""


class ProtectedSecretRequest(SecAggError):
    """The hub asked for what would unmask one silo's input (both shares of one silo)."""


class ReconstructionFailed(SecAggError):
    """Revealed shares are inconsistent, or do not rebuild the secret their owner committed to."""
