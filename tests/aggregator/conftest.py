"""A real hub for admission tests: coordinator, mTLS gRPC server, embedded Rego gate, audit log.

Silos are played by raw gRPC clients holding real certificates, so tests can send what a
real sidecar never would (bad signatures, replays, tampered payloads).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from fedsilo import __version__
from fedsilo.aggregator import JobCoordinator, PrivacyBook, SiloTrust, StandingSource, UpdateGate, start_server
from fedsilo.api import Denial, FederatedJob, JobOutcome, ModelQualityStatus, RoundReport, StatisticsStatus
from fedsilo.identity import CertificateAuthority, SigningKey, TlsCredentials, sha256_digest
from fedsilo.launch import silo_ca_file
from fedsilo.policy import PolicyGate
from fedsilo.protocol import (
    UpdateMetadata,
    architecture_fingerprint,
    pb,
    plan_from_proto,
    rpc,
    update_stream,
    verdict_from_proto,
)
from fedsilo.registry import LocalRegistry
from fedsilo.runner import build_gate
from fedsilo.strategies import make_strategy

WEIGHTS = {"w": np.zeros((4, 3), np.float32), "b": np.zeros(3, np.float32)}
LENGTH = 16  # 15 values + the weight


def job_document(silos: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": "FederatedJob",
        "metadata": {"name": "admission"},
        "spec": {
            "silos": silos,
            "minSilos": 1,
            "rounds": 1,
            "roundTimeoutSeconds": 20,
            "model": {"builtin": "logistic_regression"},
            "aggregation": {"mode": "plain"},
            "policy": {"normCap": 5.0, "dataClass": "internal"},
            **spec,
        },
    }


def _norm(payload: np.ndarray) -> float:
    """The norm of the update inside a plain payload ``[n * update..., n]``; 0 for a payload with no weight."""
    weight = float(payload[-1])
    if weight == 0 or not np.isfinite(payload).all():
        return 0.0
    return float(np.linalg.norm(payload[:-1].astype(np.float64) / weight))


@dataclass
class Silo:
    """A silo's credentials and a stub on an mTLS channel."""

    name: str
    key: SigningKey
    stub: rpc.AggregatorStub
    channel: grpc.Channel

    def join(self) -> None:
        self.stub.Join(pb.JoinRequest(job="admission", silo=self.name, num_samples=100))

    def metadata(self, payload: np.ndarray, **changes: Any) -> UpdateMetadata:
        fields: dict[str, Any] = {
            "job": "admission",
            "round": 1,
            "silo": self.name,
            "nonce": secrets.token_hex(16),
            # An honest silo signs its update's real norm (the payload is [n * update..., n]).
            "l2_norm": _norm(payload),
            "num_samples": 100,
            "vector_length": LENGTH,
            "dtype": "float32",
            "payload_digest": sha256_digest(payload.astype("<f4").tobytes()),
            "epsilon_round": None,
            "fedsilo_version": __version__,
            "architecture": architecture_fingerprint(WEIGHTS),
            "mechanism": None,
        }
        return UpdateMetadata(**(fields | changes))

    def submit(
        self,
        metadata: UpdateMetadata,
        payload: np.ndarray,
        *,
        key: SigningKey | None = None,
        signed: bytes | None = None,
    ):
        data = signed if signed is not None else metadata.canonical_bytes()
        signature = (key or self.key).sign(data)
        reply = self.stub.SubmitUpdate(update_stream(data, signature, [(0, payload)], "float32"))
        return verdict_from_proto(reply)


@dataclass
class Hub:
    coordinator: JobCoordinator
    port: int
    ca: CertificateAuthority
    workdir: Path
    silos: dict[str, Silo]
    thread: threading.Thread
    outcome: dict[str, Any]
    # The hub's audit key, which also signs every global model it serves.
    model_key: SigningKey
    # Each silo's own CA when the hub binds silos to their CAs; empty: one CA for all.
    silo_cas: dict[str, CertificateAuthority] = field(default_factory=dict)
    # The silos' CAs as the server follows them (``own_cas``); None: one CA for all.
    trust: SiloTrust | None = None

    def open_round(self) -> int:
        """Every silo joins and waits; the round opens once all of them wait."""
        for silo in self.silos.values():
            silo.join()
        return self.next_round(0)

    def next_round(self, after: int) -> int:
        """Every silo asks for the round after ``after``; the round that opened for all of them."""
        waits = [
            s.stub.WaitRound.future(pb.WaitRoundRequest(job="admission", silo=s.name, after_round=after))
            for s in self.silos.values()
        ]
        rounds = {plan_from_proto(w.result(timeout=60)).round for w in waits}
        assert len(rounds) == 1
        return rounds.pop()

    def first_summary(self, timeout: float = 30.0) -> Any:
        """Round 1's summary, once the coordinator has closed it."""
        deadline = time.monotonic() + timeout
        while not self.coordinator.summaries and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.coordinator.summaries[0]

    def client(self, name: str, key: SigningKey, issuer: CertificateAuthority | None = None) -> Silo:
        """A silo's stub; its certificate from ``issuer`` (its own CA, or another's to impersonate it)."""
        ca = issuer or self.silo_cas.get(name, self.ca)
        credentials: TlsCredentials = ca.issue(name, server=False)
        channel = grpc.secure_channel(
            f"localhost:{self.port}",
            grpc.ssl_channel_credentials(
                self.ca.certificate_pem, credentials.private_key_pem, credentials.certificate_pem
            ),
        )
        return Silo(name, key, rpc.AggregatorStub(channel), channel)

    def records(self) -> list[dict[str, Any]]:
        """The audit log's decision records, in order."""
        lines = (self.workdir / "audit.jsonl").read_text().splitlines()
        return [record for record in map(json.loads, lines) if record["kind"] == "decision"]


@contextmanager
def running_hub(
    tmp_path: Path,
    names: list[str],
    book: Callable[[FederatedJob], PrivacyBook] | None = None,
    *,
    own_cas: bool = False,
    gate_wrapper: Callable[[PolicyGate], UpdateGate] | None = None,
    keys: dict[str, SigningKey] | None = None,
    standing: StandingSource | None = None,
    ca_files: Path | None = None,
    weights: dict[str, np.ndarray] | None = None,
    **spec: Any,
) -> Iterator[Hub]:
    """A coordinator for ``names`` behind a real mTLS server, its round loop in a thread.

    With ``own_cas`` every silo has its own CA, as in a cluster: the server trusts all of
    them and binds each silo to its own. ``gate_wrapper`` wraps the real gate (to slow it down).
    ``keys`` are the silos' signing keys (default: new ones); ``standing`` is asked at round boundaries.
    ``ca_files`` (with ``own_cas``): the silos' CAs are read from ``silo-ca.<silo>.crt`` files there, as
    ``fedsilo aggregator`` reads them, and followed as they change (``Hub.trust``). ``weights``: the
    initial model (default :data:`WEIGHTS`).
    """
    keys = keys or {n: SigningKey.generate() for n in names}
    job = FederatedJob.model_validate(job_document(names, **spec))
    ca = CertificateAuthority.create()
    hub_key = SigningKey.generate()
    gate = build_gate(tmp_path, hub_key)
    coordinator = JobCoordinator(
        job,
        {n: k.public_key for n, k in keys.items()},
        WEIGHTS if weights is None else weights,
        make_strategy(job.spec),
        LocalRegistry(tmp_path / "registry"),
        gate_wrapper(gate) if gate_wrapper is not None else gate,
        model_key=hub_key,
        privacy=book(job) if book is not None else None,
        standing=standing,
    )
    served = ca.issue("aggregator", server=True, dns_names=("localhost",))
    silo_cas = {n: CertificateAuthority.create(f"{n} CA") for n in names} if own_cas else {}
    trust = None
    if own_cas and ca_files is not None:
        ca_files.mkdir(parents=True, exist_ok=True)
        for n, c in silo_cas.items():
            (ca_files / silo_ca_file(n)).write_bytes(c.certificate_pem)
        trust = SiloTrust.from_files({n: ca_files / silo_ca_file(n) for n in names}, recheck_seconds=0.2)
    elif own_cas:
        trust = SiloTrust({n: c.certificate_pem for n, c in silo_cas.items()})
    if trust is not None:
        served = TlsCredentials(served.private_key_pem, served.certificate_pem, trust.roots())
    server, port = start_server(coordinator, "localhost:0", served, trust=trust)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["summaries"] = coordinator.run()
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    h = Hub(coordinator, port, ca, tmp_path, {}, thread, outcome, hub_key, silo_cas, trust)
    h.silos = {n: h.client(n, keys[n]) for n in names}
    try:
        yield h
    finally:
        for silo in h.silos.values():
            silo.channel.close()
        server.stop(grace=0)
        gate.audit.close()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with running_hub(tmp_path, ["a", "b", "c"]) as h:
        yield h


class RecordedRounds:
    """A status reporter that keeps the rounds it is told of (the Kubernetes one is tested against a real API server)."""

    def __init__(self) -> None:
        self.rounds: list[RoundReport] = []

    def round_completed(self, report: RoundReport) -> None:
        self.rounds.append(report)

    def update_denied(self, denial: Denial) -> None:
        """Not kept."""

    def job_finished(self, outcome: JobOutcome) -> None:
        """Not kept."""

    def model_evaluated(self, quality: ModelQualityStatus) -> None:
        """Not kept."""

    def statistics_released(self, statistics: StatisticsStatus) -> None:
        """Not kept."""
