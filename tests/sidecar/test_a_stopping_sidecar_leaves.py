"""A sidecar asked to stop mid-round tells the hub it leaves, and the round closes without waiting for it.

A masked job of four silos with a real hub (coordinator, mTLS gRPC, embedded Rego, audit log)
and real sidecars whose trainers answer at once (``fedsilo_testing.loopback_job``). The round
timeout is long (``ROUND_TIMEOUT_S``), as in real jobs. One silo's sidecar is stopped in round 1:
its update's way raises ``Terminated`` where the SIGTERM handler of a sidecar process raises it
(``fedsilo.launch.raise_on_sigterm``; a signal reaches only a process's main thread, and these
sidecars are threads of the test: the handler itself is tested with real processes in
tests/cli/test_silo_processes_stop_when_asked.py). Stopped before its upload, the silo is a
dropout whose masks the others' shares remove; stopped after it, its input still counts and the
unmasking does without it. Either way the job goes on with the others, the leave is in the
round's summary and in the audit log, which verifies. In homomorphic mode, where every key
holder's decryption share is needed, a key holder that leaves fails its round at once, and the
round is retried without it.

Without the Leave the hub waits out the step's deadline for the stopped silo: the job would
not end within ``ROUND_TIMEOUT_S / 2``, and no leave would be recorded. And the Leave is best
effort: a hub that takes it and never answers does not hold the stopping sidecar.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from fedsilo.aggregator import serve
from fedsilo.api import FederatedJob
from fedsilo.audit import verify_audit_log
from fedsilo.identity import CertificateAuthority, SigningKey, SiloIdentity
from fedsilo.launch import Terminated
from fedsilo.protocol import PolicyVerdict, TensorLayout, Weights, pb, rpc
from fedsilo.sidecar import Sidecar, SidecarConfig, TrainerLinkService
from fedsilo.sidecar._connection import Connection
from fedsilo.sidecar._pipeline import Next, OutgoingUpdate, Step
from fedsilo.sidecar._sidecar import LEAVE_REASON
from fedsilo_testing.loopback_job import LoopbackRun, run_loopback_job

from ..aggregator.conftest import job_document

SILOS = ("a", "b", "c", "d")
RECORDS = {silo: 100 * (i + 1) for i, silo in enumerate(SILOS)}
WEIGHTS: Weights = {"w": np.zeros((6, 5), np.float32), "b": np.zeros(5, np.float32)}
ROUND_TIMEOUT_S = 120
STOPPED = "d"


def _delta(silo: str, round_number: int) -> np.ndarray:
    """Each silo's update in each round, inside the clip range."""
    size = TensorLayout.of(WEIGHTS).size
    return np.random.default_rng([SILOS.index(silo), round_number]).uniform(-1, 1, size).astype(np.float32)


def _mean(silos: tuple[str, ...], round_number: int) -> np.ndarray:
    """The record-weighted mean update of ``silos`` in ``round_number``."""
    total = sum(RECORDS[s] * _delta(s, round_number).astype(np.float64) for s in silos)
    return np.asarray(total / sum(RECORDS[s] for s in silos))


def _stopped_sidecar(after_upload: bool) -> Any:
    """Silo ``STOPPED``'s sidecar, asked to stop in round 1 just before (or just after) its masked upload."""

    def stop(update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
        if after_upload:
            call_next(update)
        raise Terminated

    class Stopped(Sidecar):
        def steps(self, stub: rpc.AggregatorStub) -> list[Step]:
            steps = super().steps(stub)
            # Just before the last step (Send): masks advertised and shared, the update masked and signed.
            return [*steps[:-1], stop, steps[-1]]

    def build(config: SidecarConfig, identity: SiloIdentity, link: TrainerLinkService) -> Sidecar:
        return Stopped(config, identity, link)

    return build


def _run(tmp_path: Path, after_upload: bool, mode: str = "masked") -> LoopbackRun:
    """The job, which must end well before the round timeout: only the leave can make it."""
    job = FederatedJob.model_validate(
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "FederatedJob",
            "metadata": {"name": "leave"},
            "spec": {
                "silos": list(SILOS),
                "minSilos": 3,
                "rounds": 2,
                "roundTimeoutSeconds": ROUND_TIMEOUT_S,
                "model": {"builtin": "mlp"},
                "aggregation": {"mode": mode, "clipRange": 1.0},
                "policy": {"normCap": 1e6, "dataClass": "internal"},
            },
        }
    )
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["run"] = run_loopback_job(
                job, WEIGHTS, RECORDS, _delta, tmp_path, {STOPPED: _stopped_sidecar(after_upload)}
            )
        except BaseException as error:  # reported below, with the test's own message
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=ROUND_TIMEOUT_S / 2)
    assert "error" not in outcome, outcome.get("error")
    assert "run" in outcome, "the job did not end: the hub waited out the deadline for the stopped silo"
    result: LoopbackRun = outcome["run"]
    return result


def _leave_records(folder: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
    return [r for r in records if r["kind"] == "operation" and r["operation"] == "leave"]


@pytest.mark.integration
def test_a_silo_stopped_before_its_upload_leaves_and_the_others_sum_is_unmasked(tmp_path: Path) -> None:
    run = _run(tmp_path, after_upload=False)
    first, second = run.summaries

    assert first.left == {STOPPED: LEAVE_REASON}
    assert first.dropped == (STOPPED,) and sorted(first.accepted) == ["a", "b", "c"]
    assert first.void is None
    # Its pairwise masks were removed with the others' shares: the model moved by their mean alone.
    np.testing.assert_allclose(run.models[1].astype(np.float64), _mean(("a", "b", "c"), 1), atol=1e-4)
    # Gone until it joins again: round 2 is the others' alone, with no leave of its own.
    assert second.participants == ("a", "b", "c") and second.left == {}
    np.testing.assert_allclose(run.models[2] - run.models[1], _mean(("a", "b", "c"), 2), atol=1e-4)
    assert STOPPED not in run.exit_codes and all(run.exit_codes[s] == 0 for s in ("a", "b", "c"))

    (leave,) = _leave_records(tmp_path)
    assert leave["round"] == 1 and leave["reason"] == LEAVE_REASON
    assert leave["details"] == {"silo": STOPPED, "uploaded": False}
    verify_audit_log(tmp_path / "audit.jsonl", run.audit_key)


@pytest.mark.integration
def test_a_silo_stopped_after_its_upload_leaves_and_its_input_still_counts(tmp_path: Path) -> None:
    run = _run(tmp_path, after_upload=True)
    first, second = run.summaries

    assert first.left == {STOPPED: LEAVE_REASON}
    assert sorted(first.accepted) == list(SILOS) and first.dropped == ()
    # Its masked input is in the sum, unmasked without an answer from it.
    np.testing.assert_allclose(run.models[1].astype(np.float64), _mean(SILOS, 1), atol=1e-4)
    assert second.participants == ("a", "b", "c")
    np.testing.assert_allclose(run.models[2] - run.models[1], _mean(("a", "b", "c"), 2), atol=1e-4)

    (leave,) = _leave_records(tmp_path)
    assert leave["details"] == {"silo": STOPPED, "uploaded": True}
    verify_audit_log(tmp_path / "audit.jsonl", run.audit_key)


@pytest.mark.integration
def test_a_key_holder_that_leaves_after_its_upload_fails_its_round_now_which_is_retried_without_it(
    tmp_path: Path,
) -> None:
    # Homomorphic mode needs every key holder's decryption share: a leave cannot be recovered from,
    # so it fails the round at once (as the deadline would, later), and the retry goes on without it.
    run = _run(tmp_path, after_upload=True, mode="homomorphic")
    assert [s.round for s in run.summaries] == [2, 3]
    assert run.summaries[0].participants == ("a", "b", "c")
    np.testing.assert_allclose(run.models[1].astype(np.float64), _mean(("a", "b", "c"), 2), atol=1e-4)

    (leave,) = _leave_records(tmp_path)
    assert leave["round"] == 1 and leave["details"] == {"silo": STOPPED, "uploaded": True}
    verify_audit_log(tmp_path / "audit.jsonl", run.audit_key)


class _Hanging(rpc.AggregatorServicer):
    """A hub that takes a Leave and does not answer: a fault a working hub never has, so a stand-in serves it."""

    def __init__(self) -> None:
        self.called = threading.Event()
        self.release = threading.Event()

    def Leave(self, request: pb.SignedMetadata, context: grpc.ServicerContext) -> pb.Decision:
        self.called.set()
        self.release.wait(120)
        return pb.Decision(accepted=True)


def test_a_hub_that_does_not_answer_the_leave_does_not_hold_the_stopping_sidecar() -> None:
    ca = CertificateAuthority.create()
    hub = _Hanging()
    server, port = serve(hub, "localhost:0", ca.issue("aggregator", server=True, dns_names=("localhost",)), workers=2)
    job = FederatedJob.model_validate(job_document(["a"], roundTimeoutSeconds=ROUND_TIMEOUT_S))
    identity = SiloIdentity(SigningKey.generate(), ca.issue("a", server=False))
    sidecar = Sidecar(SidecarConfig(job, "a", f"localhost:{port}", {}), identity, TrainerLinkService())
    connection = Connection(f"localhost:{port}", identity.tls, None)
    stopping = threading.Thread(target=sidecar._leave, args=(connection.stub,), daemon=True)
    try:
        stopping.start()
        # The sidecar gives up on the leave at its own deadline and goes on exiting, while the hub still holds the call.
        stopping.join(timeout=ROUND_TIMEOUT_S / 2)
        assert hub.called.is_set() and not stopping.is_alive()
    finally:
        hub.release.set()
        connection.close()
        server.stop(grace=0)
