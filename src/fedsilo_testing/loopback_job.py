"""A whole job on loopback without processes: the real hub and real sidecars, in-process trainers.

The hub is the coordinator behind its mTLS gRPC server, with the embedded Rego gate and the
audit log; the sidecars are real, each fed by an in-process trainer that answers at once.

The trainer adds a known update to the model it is given (``Delta``: per silo and round), so
a test can compute what the hub must make of it; ``make_sidecar`` lets a test run a
modified sidecar (an extra step, a key holder that fails, a verdict recorder) for one silo.
Used by the sparse-graph, masked-vote, homomorphic and large-model tests
(tests/secagg/test_sparse_rounds_over_grpc.py, tests/robustness/test_masked_vote_over_grpc.py,
tests/he/test_rounds_over_grpc.py, tests/sidecar/test_a_model_over_the_message_limit.py,
tests/sidecar/test_a_stopping_sidecar_leaves.py) and
the round benchmarks of the vote and of a stopped silo (benchmarks/bench_masked_vote_rounds.py,
benchmarks/bench_leave.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fedsilo.aggregator import JobCoordinator, RoundObserver, RoundSummary, start_server
from fedsilo.api import FederatedJob
from fedsilo.identity import CertificateAuthority, SigningKey, SiloIdentity, VerifyKey
from fedsilo.launch import Terminated
from fedsilo.protocol import TensorLayout, TrainerReply, Weights, decode_weights, encode_weights
from fedsilo.registry import LocalRegistry
from fedsilo.runner import build_gate
from fedsilo.sidecar import Sidecar, SidecarConfig, TrainerLinkService
from fedsilo.strategies import make_strategy

#: A silo's update in a round: what its trainer adds to the global model it was given.
Delta = Callable[[str, int], npt.NDArray[np.float32]]
#: Builds one silo's sidecar (default: ``Sidecar`` itself).
MakeSidecar = Callable[[SidecarConfig, SiloIdentity, TrainerLinkService], Sidecar]


class SiloVanished(Exception):
    """Raised by a test's step to end its silo's sidecar as a killed process would: no further call.

    A sidecar that is asked to stop instead (SIGTERM) gets ``fedsilo.launch.Terminated``, which a
    test's step raises the same way; the sidecar then sends its Leave before its thread ends.
    """


@dataclass(frozen=True)
class LoopbackRun:
    """The rounds' summaries, the global model after each (index 0: the initial model), the sidecars' exit codes.

    ``models[i]`` is the model of ``summaries[i - 1]``: round ``i`` unless a round failed and
    was run again under the next number (its summary is then missing, as is its model).
    A sidecar that vanished (``SiloVanished``), was stopped (``Terminated``) or did not end has
    no exit code. ``audit_key`` verifies the hub's audit log (``fedsilo.audit.verify_audit_log``).
    """

    summaries: list[RoundSummary]
    models: list[npt.NDArray[np.float32]]
    exit_codes: dict[str, int]
    audit_key: VerifyKey


def _instant_trainer(silo: str, records: int, delta: Delta, link: TrainerLinkService, stop: threading.Event) -> None:
    """Answers each task at once: the model it was given plus ``delta(silo, round)``, and a score."""
    next_round = 0
    while not stop.is_set():
        with link._cond:  # an in-process trainer makes no gRPC call: mark it alive as a call would
            link._last_call = time.monotonic()
        offered = link.next_task(next_round, 0.5)
        if offered is None:
            continue
        task, blob = offered
        if task.kind == "finished":
            return
        if task.kind == "hello":
            link.complete(TrainerReply(round=0, num_samples=records), b"")
        elif task.kind == "fit":
            layout = TensorLayout.of(decode_weights(blob))
            local = layout.flatten(decode_weights(blob)) + delta(silo, task.round)
            fit = {"num_samples": records, "train_loss": 1.0, "steps": 1, "batch_size": 10}
            reply = TrainerReply.model_validate({"round": task.round, "fit": fit})
            link.complete(reply, encode_weights(layout.unflatten(local)))
        else:  # an evaluation: a score, so the hub need not wait for it until the deadline
            evaluation = {"loss": 1.0, "accuracy": 0.5, "num_samples": records}
            link.complete(TrainerReply.model_validate({"round": task.round, "evaluation": evaluation}), b"")
        next_round = task.round + 1


def _run_sidecar(silo: str, sidecar: Sidecar, exit_codes: dict[str, int]) -> None:
    try:
        exit_codes[silo] = sidecar.run()
    except (SiloVanished, Terminated):
        return


def run_loopback_job(
    job: FederatedJob,
    weights: Weights,
    records: Mapping[str, int],
    delta: Delta,
    folder: Path,
    make_sidecar: Mapping[str, MakeSidecar] | None = None,
    observer: RoundObserver | None = None,
) -> LoopbackRun:
    """Run ``job`` to its end with every silo of ``records``; its registry and audit log go under ``folder``.

    ``observer`` is told of the rounds as the hub's status reporter would be (a benchmark's clock).
    """
    silos = tuple(job.spec.silos)
    ca = CertificateAuthority.create()
    keys = {silo: SigningKey.generate() for silo in silos}
    verify = {s: k.public_key for s, k in keys.items()}
    hub_key = SigningKey.generate()
    registry = LocalRegistry(folder / "registry")
    gate = build_gate(folder, hub_key)
    coordinator = JobCoordinator(
        job,
        verify,
        weights,
        make_strategy(job.spec),
        registry,
        gate,
        model_key=hub_key,
        silo_ceilings=dict.fromkeys(silos),
        observer=observer,
    )
    server, port = start_server(
        coordinator, "localhost:0", ca.issue("aggregator", server=True, dns_names=("localhost",))
    )
    stop = threading.Event()
    threads = []
    exit_codes: dict[str, int] = {}
    for silo in silos:
        link = TrainerLinkService()
        config = SidecarConfig(job, silo, f"localhost:{port}", verify, aggregator_key=hub_key.public_key)
        build = (make_sidecar or {}).get(silo, Sidecar)
        sidecar = build(config, SiloIdentity(keys[silo], ca.issue(silo, server=False)), link)
        threads.append(
            threading.Thread(target=_instant_trainer, args=(silo, records[silo], delta, link, stop), daemon=True)
        )
        threads.append(threading.Thread(target=_run_sidecar, args=(silo, sidecar, exit_codes), daemon=True))
    for thread in threads:
        thread.start()
    try:
        summaries = coordinator.run()
        # The sidecars learn that the job finished from the hub: stopping it earlier cuts their last call.
        for thread in threads[1::2]:
            thread.join(timeout=60)
    finally:
        stop.set()
        server.stop(grace=1)
        gate.audit.close()  # sealed, as the hub process seals it: the log verifies
    layout = TensorLayout.of(weights)
    name = job.metadata.name
    models = [layout.flatten(weights)] + [
        layout.flatten(registry.load(registry.show(name, summary.round))) for summary in summaries
    ]
    return LoopbackRun(summaries, models, dict(exit_codes), hub_key.public_key)
