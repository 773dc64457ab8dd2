"""What the per-update checks cost (signed model, compatibility, consent, telemetry), next to a plain round.

10 silos, a 1M-parameter model, training excluded. Per update, each new check is timed on
its own, on the real code path and real sizes:

- the sidecar's ``ModelCheck``: the Ed25519 signature on the model's claim and the SHA-256
  of the 4 MB model it received (it replaces the plain digest check that came before, so
  its added cost is the signature; both are shown);
- the sidecar's ``architecture_fingerprint`` of the trainer's weights;
- the hub's ``check_compatibility`` admission step;
- consent (``consent_refusal`` of a Silo with a consent block): checked once per job and
  silo by the hub and by the silo's operator, not per update, so counting it per update
  overstates it;
- the hub's telemetry for one decided update (``update_decided``: counters and the latency
  histogram);

and once per round the hub's seal (lineage digest and one signature) and the round's
telemetry (``round_recorded`` for 10 silos). Next to them, the
median of a real plain round (hub, mTLS, 10 real sidecars in one process) which now runs
these checks; ``round_without_checks_s`` subtracts their cost from it, counting every
silo's sidecar checks as if they ran one after another on this host (in a deployment
each silo checks on its own machine, in parallel).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_update_checks.py
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

from _harness import job_documents, measure_in_child, model_of, print_figures

from fedsilo import __version__
from fedsilo.aggregator import RoundSummary, SiloRoundStats
from fedsilo.aggregator._admission import Admission, Submission
from fedsilo.aggregator._attribution import SeenNonces
from fedsilo.aggregator._metrics import round_recorded, update_decided
from fedsilo.aggregator._record import seal_model
from fedsilo.aggregator._uploads import UploadSlots
from fedsilo.api import FederatedJob, Silo, consent_refusal
from fedsilo.identity import SigningKey, sha256_digest
from fedsilo.protocol import (
    GlobalModelClaim,
    RoundPlan,
    UpdateMetadata,
    architecture_fingerprint,
    decode_weights,
    encode_weights,
)
from fedsilo.registry import Lineage, lineage_digest
from fedsilo.sidecar._model_check import ModelCheck

SILOS = 10
PARAMETERS = 1_000_000
REPEATS = 30


def _median_seconds(action: Callable[[], object]) -> float:
    samples = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    documents = job_documents(SILOS, 3, "plain")
    job = FederatedJob.model_validate({**documents[0], "spec": {**documents[0]["spec"], "purpose": "sepsis-research"}})
    consenting = Silo.model_validate(
        {
            **documents[1],
            "spec": {
                **documents[1].get("spec", {}),
                "consent": {
                    "dataClasses": ["internal", "sensitive"],
                    "purposes": ["triage", "sepsis-research"],
                    "jobNames": ["sepsis-*", "bench*"],
                },
            },
        }
    )
    assert consent_refusal(job, consenting) is None, "the benchmark times the full (consenting) path"
    names = [str(n) for n in job.spec.silos]
    summary = RoundSummary(
        round=1,
        participants=tuple(names),
        accepted=tuple(names),
        dropped=(),
        denied={},
        seconds=1.0,
        model_digest="sha256:00",
        silos={
            n: SiloRoundStats(
                bytes_up=4_000_000, bytes_down=4_000_000, accepted=True, update_distance=1.0, update_cosine=0.5
            )
            for n in names
        },
    )
    name = job.metadata.name
    weights = model_of(PARAMETERS)
    blob = encode_weights(weights)
    key = SigningKey.generate()
    claim = GlobalModelClaim(
        job=name, round=0, model_digest=sha256_digest(blob), parent_digest=None, lineage_digest=None
    )
    seal = seal_model(key, claim)
    plan = RoundPlan(round=1, model_digest=claim.model_digest, model_claim=seal.claim, model_signature=seal.signature)
    check = ModelCheck(name, key.public_key)
    trainer_weights = decode_weights(blob)
    fingerprint = architecture_fingerprint(weights)

    admission = Admission(
        job,
        {},
        None,  # type: ignore[arg-type]  # the gate: check_compatibility never reaches it
        threading.Condition(),
        lambda: None,
        nonces=SeenNonces(),
        uploads=UploadSlots(2),
        architecture=fingerprint,
    )
    submission = Submission("silo-00", b"", b"", iter(()))
    submission.claims = UpdateMetadata(
        job=name,
        round=1,
        silo="silo-00",
        nonce="00",
        l2_norm=1.0,
        num_samples=1000,
        vector_length=PARAMETERS + 1,
        dtype="float32",
        payload_digest="sha256:00",
        epsilon_round=None,
        fedsilo_version=__version__,
        architecture=fingerprint,
    )
    lineage = Lineage(name, 1, claim.model_digest, None, ("silo-00",), {"silo-00": "sha256:00"})

    model_check = _median_seconds(lambda: check(plan, blob))
    digest_only = _median_seconds(lambda: sha256_digest(blob))
    fingerprint_s = _median_seconds(lambda: architecture_fingerprint(trainer_weights))
    compatibility = _median_seconds(lambda: admission.check_compatibility(submission))
    consent = _median_seconds(lambda: consent_refusal(job, consenting))
    telemetry_update = _median_seconds(lambda: update_decided(job, names[0], True, (), 0.5))
    telemetry_round = _median_seconds(lambda: round_recorded(job, summary))
    hub_seal = _median_seconds(
        lambda: seal_model(key, claim.model_copy(update={"lineage_digest": lineage_digest(lineage)}))
    )

    figures = measure_in_child(silos=SILOS, parameters=PARAMETERS, mode="plain", rounds=3)
    round_s = figures.median_seconds
    per_update = model_check + fingerprint_s + compatibility + consent + telemetry_update
    added_per_update = per_update - digest_only  # the digest check was there before
    per_round = SILOS * per_update + hub_seal + telemetry_round
    rows = [
        {
            "what": "sidecar ModelCheck (signature + sha256 of the model)",
            "seconds": model_check,
            "share_of_round": model_check / round_s,
        },
        {
            "what": "  of which the sha256 the sidecar did before",
            "seconds": digest_only,
            "share_of_round": digest_only / round_s,
        },
        {
            "what": "sidecar architecture fingerprint",
            "seconds": fingerprint_s,
            "share_of_round": fingerprint_s / round_s,
        },
        {"what": "hub check_compatibility step", "seconds": compatibility, "share_of_round": compatibility / round_s},
        {
            "what": "consent of one silo (per job; counted per update)",
            "seconds": consent,
            "share_of_round": consent / round_s,
        },
        {
            "what": "hub telemetry of one decided update",
            "seconds": telemetry_update,
            "share_of_round": telemetry_update / round_s,
        },
        {"what": "all new checks, one update", "seconds": per_update, "share_of_round": per_update / round_s},
        {
            "what": "  added over the old digest check",
            "seconds": added_per_update,
            "share_of_round": added_per_update / round_s,
        },
        {"what": "hub seal, once per round", "seconds": hub_seal, "share_of_round": hub_seal / round_s},
        {
            "what": f"hub telemetry of a round ({SILOS} silos)",
            "seconds": telemetry_round,
            "share_of_round": telemetry_round / round_s,
        },
        {
            "what": f"all checks of a round ({SILOS} updates + seal + telemetry)",
            "seconds": per_round,
            "share_of_round": per_round / round_s,
        },
        {"what": "plain round with the checks (median of 3)", "seconds": round_s, "share_of_round": 1.0},
        {
            "what": "round_without_checks_s (estimate)",
            "seconds": round_s - per_round,
            "share_of_round": (round_s - per_round) / round_s,
        },
    ]
    print_figures(
        f"per-update checks (signed model, compatibility, consent, telemetry), {SILOS} silos, {PARAMETERS:,} parameters",
        rows,
    )


if __name__ == "__main__":
    main()
