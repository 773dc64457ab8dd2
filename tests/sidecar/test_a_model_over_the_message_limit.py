"""A model larger than any gRPC message completes a masked round over real mutual TLS.

Two real sidecars (with instant trainers on their links) and a real coordinator behind the
mTLS server, whose channels all refuse messages over 4 MiB; the model is one flat tensor of
6 MB. Every transfer is streamed in chunks: the model to the sidecars, the masked updates to
the hub, which adds them into its running sum. The round's model is the clipped mean.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from fedsilo.aggregator import JobCoordinator, start_server
from fedsilo.aggregator._service import MAX_MESSAGE_BYTES
from fedsilo.api import FederatedJob
from fedsilo.identity import CertificateAuthority, SigningKey, SiloIdentity
from fedsilo.protocol import PolicyVerdict
from fedsilo.registry import LocalRegistry
from fedsilo.runner import build_gate
from fedsilo.sidecar import Sidecar, SidecarConfig, TrainerLinkService
from fedsilo.strategies import make_strategy

from ..aggregator.conftest import job_document
from .test_global_model_seal import Trainer

VALUES = 1_500_000  # 6 MB of float32: above the 4 MiB every channel takes in one message
NORM_CAP = 5.0


def test_a_model_over_the_message_limit_completes_a_masked_round(tmp_path: Path) -> None:
    assert VALUES * 4 > MAX_MESSAGE_BYTES
    silos = ["a", "b"]
    job = FederatedJob.model_validate(
        job_document(
            silos,
            minSilos=2,
            roundTimeoutSeconds=30,
            aggregation={"mode": "masked"},
            policy={"normCap": NORM_CAP, "dataClass": "internal"},
        )
    )
    ca = CertificateAuthority.create()
    keys = {silo: SigningKey.generate() for silo in silos}
    public = {silo: key.public_key for silo, key in keys.items()}
    hub_key = SigningKey.generate()
    registry = LocalRegistry(tmp_path / "registry")
    coordinator = JobCoordinator(
        job,
        public,
        {"flat": np.zeros(VALUES, np.float32)},
        make_strategy(job.spec),
        registry,
        build_gate(tmp_path, hub_key),
        model_key=hub_key,
    )
    server, port = start_server(
        coordinator, "localhost:0", ca.issue("aggregator", server=True, dns_names=("localhost",))
    )
    verdicts: dict[str, PolicyVerdict] = {}
    trainers, codes = [], {}
    try:
        for silo in silos:
            link = TrainerLinkService()
            config = SidecarConfig(
                job,
                silo,
                f"localhost:{port}",
                public,
                aggregator_ca_pem=ca.certificate_pem,
                aggregator_key=hub_key.public_key,
                connect_timeout=60,
            )
            sidecar = Sidecar(
                config,
                SiloIdentity(keys[silo], ca.issue(silo, server=False)),
                link,
                on_verdict=lambda _round, verdict, s=silo: verdicts.__setitem__(s, verdict),
            )
            trainer = Trainer(link)
            trainers.append(trainer)
            threading.Thread(target=trainer.run, daemon=True).start()
            threading.Thread(target=lambda s=sidecar, n=silo: codes.__setitem__(n, s.run()), daemon=True).start()
        summaries = coordinator.run()
        # The sidecars learn from the server that the job finished: stop it only after them.
        deadline = time.monotonic() + 120
        while len(codes) < len(silos) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for trainer in trainers:
            trainer.stop.set()
        server.stop(grace=5)
    assert codes == {"a": 0, "b": 0}
    (summary,) = summaries
    assert sorted(summary.accepted) == silos
    assert all(v.accepted for v in verdicts.values()) and sorted(verdicts) == silos
    assert all(summary.silos[s].bytes_up > VALUES * 4 for s in silos)
    # Each trainer moved every value by 0.01; clipped to the norm cap, both updates are equal.
    model = registry.load(registry.show("admission"))["flat"]
    expected = NORM_CAP / np.sqrt(VALUES)
    np.testing.assert_allclose(model, expected, rtol=1e-3)
