"""A sidecar whose hub went away joins the restarted hub and takes part in the round it resumes.

Hub A (a real coordinator behind mTLS, checkpointing every round) runs round 1 with a real
``Sidecar``; then its server stops under the waiting sidecar, as a killed aggregator pod's
would. Hub B, built on the same port from hub A's checkpoint, resumes after round 1. The
sidecar, which got ``UNAVAILABLE``, joins hub B and sends round 2's update; the job ends
with both rounds, the first one restored from the checkpoint.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from pathlib import Path

import grpc

from fedsilo.aggregator import CHECKPOINT_DIR, Checkpoints, JobCoordinator, JobFailed, RoundSummary, start_server
from fedsilo.api import FederatedJob
from fedsilo.identity import CertificateAuthority, SigningKey, SiloIdentity
from fedsilo.protocol import PolicyVerdict
from fedsilo.registry import LocalRegistry
from fedsilo.runner import build_gate
from fedsilo.sidecar import Sidecar, SidecarConfig, TrainerLinkService
from fedsilo.strategies import make_strategy

from ..aggregator.conftest import WEIGHTS, job_document
from .test_global_model_seal import Trainer


class StopAfterRound:
    """Hub A's observer: its server stops as round ``last`` is checkpointed, the way a killed pod's would."""

    def __init__(self, last: int) -> None:
        self.last = last
        self.server: grpc.Server | None = None

    def round_started(self, round_number: int, participants: tuple[str, ...]) -> None:
        """Nothing to do when a round opens."""

    def update_decided(self, round_number: int, silo: str, verdict: PolicyVerdict) -> None:
        """Nothing to do per update."""

    def round_finished(self, summary: RoundSummary) -> None:
        """Stop serving once round ``last`` is checkpointed (this runs after the commit)."""
        if summary.round == self.last and self.server is not None:
            self.server.stop(grace=0)


def _hub(
    job: FederatedJob,
    folder: Path,
    silo_key: SigningKey,
    hub_key: SigningKey,
    observer: StopAfterRound | None = None,
) -> JobCoordinator:
    gate = build_gate(folder, hub_key)
    return JobCoordinator(
        job,
        {"a": silo_key.public_key},
        WEIGHTS,
        make_strategy(job.spec),
        LocalRegistry(folder / "registry"),
        gate,
        model_key=hub_key,
        observer=observer,
        checkpoints=Checkpoints(folder, ledger_run="admission/run"),
    )


def _until(condition: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_sidecar_rejoins_the_restarted_hub_and_finishes_the_job(tmp_path: Path) -> None:
    job = FederatedJob.model_validate(job_document(["a"], rounds=2, roundTimeoutSeconds=30))
    ca = CertificateAuthority.create()
    served = ca.issue("aggregator", server=True, dns_names=("localhost",))
    silo_key, hub_key = SigningKey.generate(), SigningKey.generate()
    stopper = StopAfterRound(1)
    first = _hub(job, tmp_path / "a", silo_key, hub_key, stopper)
    server, port = start_server(first, "localhost:0", served)
    stopper.server = server

    def dead_hub() -> None:
        # Hub A goes on after its server stopped, as a killed pod would not: its round 2 fails alone.
        with contextlib.suppress(JobFailed):
            first.run()

    threading.Thread(target=dead_hub, daemon=True).start()

    verdicts: dict[int, PolicyVerdict] = {}
    link = TrainerLinkService()
    config = SidecarConfig(job, "a", f"localhost:{port}", {}, aggregator_ca_pem=ca.certificate_pem, connect_timeout=30)
    sidecar = Sidecar(
        config,
        SiloIdentity(silo_key, ca.issue("a", server=False)),
        link,
        on_verdict=lambda n, v: verdicts.__setitem__(n, v),
    )
    trainer = Trainer(link)
    outcome: dict[str, int] = {}
    threading.Thread(target=trainer.run, daemon=True).start()
    threading.Thread(target=lambda: outcome.__setitem__("code", sidecar.run()), daemon=True).start()
    _until(lambda: 1 in verdicts and (tmp_path / "a" / CHECKPOINT_DIR / "round-00001.json").exists())
    server.wait_for_termination(timeout=30)

    # The restarted hub: a new process's coordinator on the same port, from the volume's checkpoint.
    shutil.copytree(tmp_path / "a" / CHECKPOINT_DIR, tmp_path / "b" / CHECKPOINT_DIR)
    second = _hub(job, tmp_path / "b", silo_key, hub_key)
    checkpoint = Checkpoints(tmp_path / "b", ledger_run="admission/run").latest()
    assert checkpoint is not None and checkpoint.round == 1
    second.resume(checkpoint)
    server, _ = start_server(second, f"localhost:{port}", served)
    try:
        summaries = second.run()
        _until(lambda: "code" in outcome)
    finally:
        trainer.stop.set()
        server.stop(grace=0)
    assert [s.round for s in summaries] == [1, 2]
    assert summaries[1].accepted == ("a",)
    assert verdicts[1].accepted and verdicts[2].accepted
    assert outcome["code"] == 0
