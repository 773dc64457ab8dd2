"""The statistics phase runs on the aggregator's gRPC service over mutual TLS, and admits only signed totals.

Each test serves a real ``StatisticsPhase`` on loopback with the run's CA and runs every
silo's part with its own certificate (``take_part``), as ``fedsilo stats`` does; one silo's
stub is altered on the wire to forge what a hostile or broken silo would send.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from fedsilo.aggregator import StatisticsFailed, StatisticsPhase, StatisticsRelease, StatisticsService, serve
from fedsilo.api import FederatedJob, FederatedJobSpec
from fedsilo.audit import AuditLog
from fedsilo.identity import CertificateAuthority, SigningKey, SiloIdentity
from fedsilo.policy import EmbeddedRegoEngine, PolicyGate
from fedsilo.protocol import StatisticsStep, pb, rpc
from fedsilo.runner import run_statistics
from fedsilo.sidecar import silo_channel, take_part
from fedsilo.statistics import SiloRecords, StatisticsError, StatisticsPlan, StatisticsSilo

from .conftest import silos_of, tabular_spec

RUN = "wire/run-1"


class _Forging:
    """A stub that forwards every call, except that ``alter`` rewrites the first message of a statistics upload."""

    def __init__(self, stub: rpc.AggregatorStub, alter: Callable[[pb.UpdateChunk], None]) -> None:
        self._stub = stub
        self._alter = alter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stub, name)

    def SubmitStatistics(self, stream: Iterator[pb.UpdateChunk], timeout: float) -> pb.Decision:
        first = next(stream)
        self._alter(first)
        return self._stub.SubmitStatistics(itertools.chain([first], stream), timeout=timeout)


def _serve_and_take_part(
    tmp_path: Path,
    spec: FederatedJobSpec,
    silos: Sequence[SiloRecords],
    *,
    forged: dict[str, Callable[[pb.UpdateChunk], None]] | None = None,
    signing_keys: dict[str, SigningKey] | None = None,
) -> tuple[StatisticsRelease | StatisticsFailed, dict[str, StatisticsStep | grpc.RpcError], Path]:
    """Serve the phase, run each silo (with its stub forged or its claims signed by another key); the outcome."""
    job = FederatedJob.model_validate(
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "FederatedJob",
            "metadata": {"name": "wire"},
            "spec": spec.model_dump(by_alias=True, exclude_none=True),
        }
    )
    ca = CertificateAuthority.create()
    audit_path = tmp_path / "audit.jsonl"
    gate = PolicyGate(EmbeddedRegoEngine(), AuditLog(audit_path, SigningKey.generate()))
    phase = StatisticsPhase(job, RUN, {s.name: s.signing_key.public_key for s in silos}, gate, step_seconds=60.0)
    server, port = serve(
        StatisticsService(phase),
        "127.0.0.1:0",
        ca.issue("aggregator", server=True, ip_addresses=("127.0.0.1",), dns_names=("localhost",)),
        workers=24,
    )
    answers: dict[str, StatisticsStep | grpc.RpcError] = {}
    peers = {s.name: s.signing_key.public_key for s in silos}

    def part(record: SiloRecords) -> None:
        identity = SiloIdentity(record.signing_key, ca.issue(record.name, server=False))
        member = StatisticsSilo(
            StatisticsPlan.for_job(RUN, spec, record.records.shape[1]), record.name, record.records, record.signing_key
        )
        with silo_channel(f"localhost:{port}", identity, None) as channel:
            stub: Any = rpc.AggregatorStub(channel)
            if forged and record.name in forged:
                stub = _Forging(stub, forged[record.name])
            key = (signing_keys or {}).get(record.name, record.signing_key)
            try:
                answers[record.name] = take_part(stub, member, key, peers, timeout=120.0)
            except grpc.RpcError as error:
                answers[record.name] = error

    threads = [threading.Thread(target=part, args=(s,), daemon=True) for s in silos]
    for thread in threads:
        thread.start()
    try:
        outcome: StatisticsRelease | StatisticsFailed = phase.result(timeout=300.0)
    except StatisticsFailed as failed:
        outcome = failed
    finally:
        for thread in threads:
            thread.join(timeout=60.0)
        server.stop(None)
        gate.audit.close()
    return outcome, answers, audit_path


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def spec() -> FederatedJobSpec:
    """Four silos, a threshold of three: one refused silo leaves enough for the others' totals."""
    return tabular_spec(tabular={"recordsPerSilo": 300})


def test_totals_signed_with_another_key_are_refused_and_the_rest_are_released(
    tmp_path: Path, spec: FederatedJobSpec
) -> None:
    silos = silos_of(spec)

    def resign(first: pb.UpdateChunk) -> None:
        first.metadata.signature = SigningKey.generate().sign(first.metadata.metadata_json)

    outcome, answers, audit = _serve_and_take_part(tmp_path, spec, silos, forged={"bank-d": resign})
    assert isinstance(outcome, StatisticsRelease)
    assert outcome.statistics.silos == ("bank-a", "bank-b", "bank-c")
    (excluded,) = outcome.statistics.excluded
    assert excluded.silo == "bank-d" and excluded.reason.startswith("signature_invalid")
    forged_answer = answers["bank-d"]
    assert isinstance(forged_answer, StatisticsStep) and "signature_invalid" in forged_answer.failure
    # The honest silos' total, without bank-d's records: counts are exact.
    honest = sum(len(s.records) for s in silos[:3])
    assert outcome.statistics.records == honest
    records = _records(audit)
    refusals = [r for r in records if r.get("silo") == "bank-d" and r.get("kind") == "decision"]
    assert refusals and refusals[0]["decision"] == "deny"
    assert refusals[0]["reasons"][0].startswith("signature_invalid")
    admitted = [r for r in records if r.get("kind") == "decision" and r["decision"] == "allow"]
    # Three silos, two passes, each upload decided by the policy with the statistics phase in its input.
    assert len(admitted) == 6
    assert {r["input"]["job"]["phase"] for r in admitted} == {"statistics"}
    assert {r["input"]["update"]["round"] for r in admitted} == {1, 2}
    (released,) = [r for r in records if r.get("kind") == "operation" and r.get("operation") == "statistics"]
    assert released["reason"] == "released" and released["details"]["silos"] == ["bank-a", "bank-b", "bank-c"]


def test_totals_whose_digest_is_not_the_signed_one_are_refused(tmp_path: Path, spec: FederatedJobSpec) -> None:
    silos = silos_of(spec)
    keys = {s.name: s.signing_key for s in silos}

    def swap_digest(first: pb.UpdateChunk) -> None:
        claims = json.loads(first.metadata.metadata_json)
        claims["payload_digest"] = "sha256:" + "0" * 64
        body = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
        first.metadata.metadata_json = body
        first.metadata.signature = keys["bank-c"].sign(body)

    outcome, _, _ = _serve_and_take_part(tmp_path, spec, silos, forged={"bank-c": swap_digest})
    assert isinstance(outcome, StatisticsRelease)
    (excluded,) = outcome.statistics.excluded
    assert excluded.silo == "bank-c" and excluded.reason.startswith("payload_digest_mismatch")


def test_a_join_signed_with_another_key_is_refused_before_anything_is_relayed(
    tmp_path: Path, spec: FederatedJobSpec
) -> None:
    silos = silos_of(spec)
    outcome, answers, audit = _serve_and_take_part(
        tmp_path, spec, silos, signing_keys={"bank-b": SigningKey.generate()}
    )
    refused = answers["bank-b"]
    assert isinstance(refused, grpc.RpcError) and refused.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "signature_invalid" in str(refused.details())
    assert isinstance(outcome, StatisticsRelease)
    assert "bank-b" not in outcome.statistics.silos
    assert any(r.get("silo") == "bank-b" and r.get("kind") == "decision" for r in _records(audit))


def test_a_job_with_an_epsilon_ceiling_gets_no_exact_totals(tmp_path: Path) -> None:
    """The policy judges statistics as updates: exact totals spend epsilon nobody accounts for."""
    spec = tabular_spec(tabular={"recordsPerSilo": 300}, policy={"maxEpsilon": 5.0})
    with pytest.raises(StatisticsError, match="epsilon_unaccounted"):
        run_statistics("ceiling", spec, silos_of(spec), step_seconds=60.0)


def test_statistics_that_cannot_fit_the_preprocessing_fail_the_phase_naming_why(
    tmp_path: Path, spec: FederatedJobSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fake, as no honest input causes it reliably: noise that pushes a feature's count below
    # minCount suppresses its mean. The phase used to wait for its timeout on this error.
    reason = "the mean of feature 0 is suppressed (fewer than minCount records in its bins)"

    def suppressed(*_: object) -> None:
        raise ValueError(reason)

    monkeypatch.setattr("fedsilo.aggregator._statistics.fit_preprocessing", suppressed)
    outcome, _, _ = _serve_and_take_part(tmp_path, spec, silos_of(spec))
    assert isinstance(outcome, StatisticsFailed) and reason in str(outcome)


def test_a_leave_during_the_phase_is_answered_that_the_silo_counts_at_the_steps_deadline(
    tmp_path: Path, spec: FederatedJobSpec
) -> None:
    silos = silos_of(spec)
    job = FederatedJob.model_validate(
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "FederatedJob",
            "metadata": {"name": "wire"},
            "spec": spec.model_dump(by_alias=True, exclude_none=True),
        }
    )
    ca = CertificateAuthority.create()
    gate = PolicyGate(EmbeddedRegoEngine(), AuditLog(tmp_path / "audit.jsonl", SigningKey.generate()))
    phase = StatisticsPhase(job, RUN, {s.name: s.signing_key.public_key for s in silos}, gate, step_seconds=60.0)
    server, port = serve(
        StatisticsService(phase),
        "127.0.0.1:0",
        ca.issue("aggregator", server=True, dns_names=("localhost",)),
        workers=4,
    )
    first = silos[0]
    identity = SiloIdentity(first.signing_key, ca.issue(first.name, server=False))
    try:
        with silo_channel(f"localhost:{port}", identity, None) as channel, pytest.raises(grpc.RpcError) as answered:
            rpc.AggregatorStub(channel).Leave(pb.SignedMetadata(metadata_json=b"{}", signature=b""), timeout=30)
    finally:
        server.stop(None)
        gate.audit.close()
    assert answered.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "statistics phase" in answered.value.details() and "deadline" in answered.value.details()
