"""The local run's policy gate: the embedded Rego engine and an audit log in the run directory."""

from __future__ import annotations

from pathlib import Path

from fedsilo.audit import AuditLog
from fedsilo.identity import SigningKey
from fedsilo.policy import EmbeddedRegoEngine, PolicyGate

AUDIT_LOG = "audit.jsonl"


def build_gate(workdir: Path, signing_key: SigningKey) -> PolicyGate:
    """A gate whose decisions go to ``workdir/audit.jsonl``, signed by ``signing_key``."""
    return PolicyGate(EmbeddedRegoEngine(), AuditLog(workdir / AUDIT_LOG, signing_key))
