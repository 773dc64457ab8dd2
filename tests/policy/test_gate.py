"""The gate records every decision before returning it, retries an engine that is briefly
away, and fails closed with a clear reason, never allowing by default; a real OPA server
stopped mid-sequence is the proof."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from fedsilo.audit import AuditLog, AuditLogClosed, verify_audit_log
from fedsilo.identity import SigningKey
from fedsilo.policy import (
    EmbeddedRegoEngine,
    OpaServerEngine,
    PolicyEngine,
    PolicyGate,
    PolicyUnavailable,
    RetryPolicy,
)
from fedsilo_testing import OpaServer
from tests.conftest import ROOT

from .conftest import VALID, varied


class Flaky(PolicyEngine):
    """An engine that is unavailable for its first ``failures`` calls, then asks the real one."""

    name = "flaky"

    def __init__(self, inner: PolicyEngine, failures: int) -> None:
        self.inner, self.failures, self.calls = inner, failures, 0

    def evaluate(self, decision_path: str, document: Mapping[str, Any]) -> object:
        self.calls += 1
        if self.calls <= self.failures:
            raise PolicyUnavailable(f"down for call {self.calls}")
        return self.inner.evaluate(decision_path, document)


class Clock:
    """Fake time: ``sleep`` advances it, so backoff and deadlines are tested without waiting."""

    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, list[float]()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def audit(tmp_path: Path, key: SigningKey) -> Iterator[AuditLog]:
    with AuditLog(tmp_path / "audit.jsonl", key, checkpoint_every=4) as log:
        yield log


def _decisions(path: Path) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["kind"] == "decision"]


def test_every_decision_is_in_the_log_when_check_returns(embedded: EmbeddedRegoEngine, audit: AuditLog) -> None:
    gate = PolicyGate(embedded, audit)
    denied_input = varied(update={"l2_norm": 9.0})
    for policy_input in (VALID, denied_input):
        decision = gate.check(policy_input)
        last = _decisions(audit.path)[-1]
        assert (last["decision"] == "allow") == decision.allow
        assert tuple(last["reasons"]) == decision.reasons
        assert last["input"] == policy_input.to_document()
        assert (last["job"], last["round"], last["silo"]) == ("j", 3, "a")
        assert last["policy_revision"] == decision.policy_revision and last["engine"] == "embedded"


def test_a_brief_outage_is_retried_with_growing_backoff(embedded: EmbeddedRegoEngine, audit: AuditLog) -> None:
    clock = Clock()
    flaky = Flaky(embedded, failures=2)
    gate = PolicyGate(flaky, audit, retry=RetryPolicy(attempts=4), sleep=clock.sleep, clock=lambda: clock.now)
    assert gate.check(VALID).allow
    assert flaky.calls == 3 and clock.sleeps == [0.05, 0.1]


def test_a_lasting_outage_denies_after_the_last_attempt_and_records_it(
    embedded: EmbeddedRegoEngine, audit: AuditLog
) -> None:
    clock = Clock()
    flaky = Flaky(embedded, failures=100)
    gate = PolicyGate(flaky, audit, retry=RetryPolicy(attempts=3), sleep=clock.sleep, clock=lambda: clock.now)
    decision = gate.check(VALID)
    assert not decision.allow and decision.codes == ("policy_unavailable",)
    assert "after 3 attempt(s)" in decision.reasons[0] and "down for call 3" in decision.reasons[0]
    assert flaky.calls == 3
    recorded = _decisions(audit.path)[-1]
    assert recorded["decision"] == "deny" and recorded["reasons"] == list(decision.reasons)


def test_the_deadline_bounds_the_retries(embedded: EmbeddedRegoEngine, audit: AuditLog) -> None:
    clock = Clock()
    flaky = Flaky(embedded, failures=100)
    retry = RetryPolicy(attempts=50, first_backoff_seconds=0.5, max_backoff_seconds=2.0, deadline_seconds=3.0)
    gate = PolicyGate(flaky, audit, retry=retry, sleep=clock.sleep, clock=lambda: clock.now)
    assert not gate.check(VALID).allow
    assert clock.now <= 3.0 and flaky.calls == 3  # waits 0.5 and 1.0; a further 2.0 would pass the deadline


def test_no_decision_takes_effect_unrecorded(embedded: EmbeddedRegoEngine, audit: AuditLog) -> None:
    gate = PolicyGate(embedded, audit)
    audit.close()
    with pytest.raises(AuditLogClosed):
        gate.check(VALID)


@pytest.mark.integration
def test_stopping_the_real_opa_server_mid_sequence_fails_closed(
    opa_binary: Path, tmp_path: Path, key: SigningKey
) -> None:
    server = OpaServer(ROOT / "policies", bundle=True, binary=opa_binary, log=tmp_path / "opa.log")
    server.start()
    try:
        with AuditLog(tmp_path / "audit.jsonl", key) as audit, OpaServerEngine(server.url, timeout_seconds=0.5) as opa:
            retry = RetryPolicy(attempts=3, first_backoff_seconds=0.05, deadline_seconds=2.0)
            gate = PolicyGate(opa, audit, retry=retry)
            before = [gate.check(varied(update={"nonce": f"n{i}"})) for i in range(3)]
            server.stop()
            started = time.monotonic()
            after = gate.check(varied(update={"nonce": "n3"}))
            waited = time.monotonic() - started
    finally:
        server.stop()
    assert all(d.allow for d in before)
    assert not after.allow and after.codes == ("policy_unavailable",)
    assert "no decision from the opa-server engine after 3 attempt(s)" in after.reasons[0]
    assert waited < 2.5
    report = verify_audit_log(tmp_path / "audit.jsonl", key.public_key)
    assert report.decisions == 4 and report.denied == 1
