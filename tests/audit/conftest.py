"""An aggregator key and a small sealed audit log, with checkpoints, to verify and tamper with."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsilo.audit import AuditLog
from fedsilo.identity import SigningKey

DECISIONS = 10
CHECKPOINT_EVERY = 4


def write_log(path: Path, key: SigningKey, decisions: int = DECISIONS, *, close: bool = True) -> AuditLog:
    """Decisions by three silos over four rounds; every fourth denied. Checkpoints after 4 and 8, a close at the end."""
    log = AuditLog(path, key, checkpoint_every=CHECKPOINT_EVERY)
    for i in range(decisions):
        log.record_decision(
            job="job" if i < 8 else "other",
            round_number=1 + i // 3,
            silo=f"silo-{i % 3}",
            payload_digest=f"sha256:{i:064x}",
            policy_input={"i": i, "update": {"l2_norm": 0.5 * i}},
            allow=i % 4 != 0,
            reasons=[] if i % 4 else ["norm_cap_exceeded: the update's L2 norm 9 is above the job's norm cap 5"],
            policy_revision="r1",
            engine="embedded",
        )
    if close:
        log.close()
    return log


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def sealed_log(tmp_path: Path, key: SigningKey) -> Path:
    path = tmp_path / "audit.jsonl"
    write_log(path, key)
    return path
