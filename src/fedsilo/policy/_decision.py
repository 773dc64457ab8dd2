"""A policy decision as a value, and the digests that pin inputs and decisions down.

Engines turn an evaluation result into a ``Decision`` through ``Decision.from_result``,
which refuses anything malformed (fail closed); the gate returns it and the audit log
records it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedsilo.identity import sha256_digest
from fedsilo.protocol import canonical_json

from ._errors import PolicyUnavailable


@dataclass(frozen=True)
class Decision:
    """Allow or deny, every reason ("<code>: <explanation>"), and the policy revision that decided."""

    allow: bool
    reasons: tuple[str, ...]
    policy_revision: str

    @property
    def codes(self) -> tuple[str, ...]:
        """The stable part of each reason, e.g. ``norm_cap_exceeded``."""
        return tuple(reason.split(":", 1)[0] for reason in self.reasons)

    def to_document(self) -> dict[str, Any]:
        """The decision in the shape the Rego returns it."""
        return {"allow": self.allow, "reasons": list(self.reasons), "policy_revision": self.policy_revision}

    @classmethod
    def from_result(cls, result: object, source: str) -> Decision:
        """Check an engine's raw result; raise ``PolicyUnavailable`` unless it is a well-formed decision.

        An allow that carries reasons is malformed too: a policy that says both cannot be trusted
        to have meant allow.
        """
        if not isinstance(result, Mapping):
            raise PolicyUnavailable(f"{source} returned no decision document: {result!r:.200}")
        allow, reasons, revision = result.get("allow"), result.get("reasons"), result.get("policy_revision")
        if (
            not isinstance(allow, bool)
            or not isinstance(reasons, list)
            or not all(isinstance(r, str) for r in reasons)
            or not isinstance(revision, str)
            or (allow and reasons)
            or (not allow and not reasons)
        ):
            raise PolicyUnavailable(f"{source} returned a malformed decision: {result!r:.200}")
        return cls(allow, tuple(reasons), revision)


def input_digest(document: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of a policy input's canonical JSON (sorted keys, no spaces)."""
    return sha256_digest(canonical_json(document))


def decision_digest(decision: Decision) -> str:
    """``sha256:<hex>`` of a decision's canonical JSON."""
    return sha256_digest(canonical_json(decision.to_document()))
