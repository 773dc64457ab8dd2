"""A model larger than any gRPC message completes a masked round over real mutual TLS.

Two real sidecars (with instant trainers on their links) and a real coordinator behind the
mTLS server (``fedsilo_testing.loopback_job``), whose channels all refuse messages over
4 MiB; the model is one flat tensor of 6 MB. Every transfer is streamed in chunks: the model
to the sidecars, the masked updates to the hub, which adds them into its running sum. The
round's model is the clipped mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from fedsilo.aggregator._service import MAX_MESSAGE_BYTES
from fedsilo.api import FederatedJob
from fedsilo.identity import SiloIdentity
from fedsilo.protocol import PolicyVerdict
from fedsilo.sidecar import Sidecar, SidecarConfig, TrainerLinkService
from fedsilo_testing.loopback_job import MakeSidecar, run_loopback_job

from ..aggregator.conftest import job_document

VALUES = 1_500_000  # 6 MB of float32: above the 4 MiB every channel takes in one message
NORM_CAP = 5.0
RECORDS = {"a": 100, "b": 100}


def _delta(silo: str, round_number: int) -> npt.NDArray[np.float32]:
    """Each trainer moves every value by 0.01."""
    return np.full(VALUES, 0.01, np.float32)


def test_a_model_over_the_message_limit_completes_a_masked_round(tmp_path: Path) -> None:
    assert VALUES * 4 > MAX_MESSAGE_BYTES
    silos = sorted(RECORDS)
    job = FederatedJob.model_validate(
        job_document(
            silos,
            minSilos=2,
            roundTimeoutSeconds=30,
            aggregation={"mode": "masked"},
            policy={"normCap": NORM_CAP, "dataClass": "internal"},
        )
    )
    verdicts: dict[str, PolicyVerdict] = {}

    def recording(silo: str) -> MakeSidecar:
        def build(config: SidecarConfig, identity: SiloIdentity, link: TrainerLinkService) -> Sidecar:
            return Sidecar(
                config, identity, link, on_verdict=lambda _round, verdict: verdicts.__setitem__(silo, verdict)
            )

        return build

    run = run_loopback_job(
        job, {"flat": np.zeros(VALUES, np.float32)}, RECORDS, _delta, tmp_path, {s: recording(s) for s in silos}
    )
    assert run.exit_codes == {"a": 0, "b": 0}
    (summary,) = run.summaries
    assert sorted(summary.accepted) == silos
    assert all(v.accepted for v in verdicts.values()) and sorted(verdicts) == silos
    assert all(summary.silos[s].bytes_up > VALUES * 4 for s in silos)
    # Each trainer moved every value by 0.01; clipped to the norm cap, both updates are equal.
    expected = NORM_CAP / np.sqrt(VALUES)
    np.testing.assert_allclose(run.models[1], expected, rtol=1e-3)
