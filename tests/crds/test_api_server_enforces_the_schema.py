"""The real API server, given the committed CRDs, accepts the examples and rejects invalid objects
with messages that say what is wrong; ``kubectl explain`` teaches the API."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from fedsilo.api import ManifestError, parse_manifest
from fedsilo_testing import ControlPlane, KubectlError

from .conftest import EXAMPLES

pytestmark = pytest.mark.integration


def job(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"silos": ["hospital-a", "hospital-b"], "model": {"builtin": "mlp"}}
    base.update(spec)
    return {"apiVersion": "fedsilo.io/v1alpha1", "kind": "FederatedJob", "metadata": {"name": "job"}, "spec": base}


def silo(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "fedsilo.io/v1alpha1", "kind": "Silo", "metadata": {"name": "hospital-a"}, "spec": spec}


def server_says(cluster: ControlPlane, namespace: str, obj: dict[str, Any]) -> str:
    """Submit ``obj`` (server-side dry run) and return the API server's refusal."""
    with pytest.raises(KubectlError) as refused:
        cluster.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(obj))
    return refused.value.stderr


#: Data whose preprocessing the statistics phase fits: what a statistics-only job (``rounds: 0``) needs.
STATISTICS = {"source": "tabular", "preprocessing": {"scaling": "standardize"}}

# Each: an invalid object, and what the user must read in the API server's answer.
INVALID = {
    "min silos above the silos": (job(minSilos=3), "minSilos is above the number of silos"),
    "threshold above the silos": (
        job(aggregation={"threshold": 5}),
        "aggregation.threshold is above the number of silos",
    ),
    "two model sources": (
        job(model={"builtin": "mlp", "factory": "pkg.mod:make"}),
        "set exactly one of builtin or factory",
    ),
    "no model source": (job(model={}), "set exactly one of builtin or factory"),
    "csv without a path": (job(data={"source": "csv"}), "data.path is required when data.source is csv or npz"),
    "privacy without noise": (job(privacy={"mode": "record"}), "set exactly one of noiseMultiplier or targetEpsilon"),
    "privacy with both noise sources": (
        job(privacy={"mode": "silo", "noiseMultiplier": 1.0, "targetEpsilon": 3.0}),
        "set exactly one of noiseMultiplier or targetEpsilon",
    ),
    "record-level DP with fedprox": (
        job(privacy={"mode": "record", "noiseMultiplier": 1.0}, strategy={"name": "fedprox"}),
        "privacy.mode record does not combine with strategy fedprox",
    ),
    "a silo named twice": (job(silos=["hospital-a", "hospital-a"]), 'Duplicate value: "hospital-a"'),
    "a silo name that is no DNS label": (job(silos=["Hospital_A", "b"]), "spec.silos[0]"),
    "an unknown strategy": (job(strategy={"name": "fedsgd"}), 'supported values: "fedavg", "fedprox", "fedadam"'),
    "negative rounds": (job(rounds=-1), "spec.rounds in body should be greater than or equal to 0"),
    "a statistics-only job with no statistics phase": (
        job(rounds=0),
        "spec.rounds 0 makes a statistics-only job, which runs the statistics phase and trains no round",
    ),
    "a statistics-only job rolled back": (
        job(rounds=0, data=STATISTICS, rollback={"toRound": 0, "reason": "retrain"}),
        "spec.rollback does not apply to a statistics-only job (spec.rounds 0)",
    ),
    "a learning rate of zero": (
        job(training={"learningRate": 0}),
        "spec.training.learningRate in body should be greater than 0",
    ),
    "no silos": (job(silos=[]), "spec.silos in body should have at least 1 items"),
    "a misspelt field": (job(minSilo=2), 'unknown field "spec.minSilo"'),
    "a silo epsilon ceiling of zero": (silo(maxEpsilon=0), "spec.maxEpsilon in body should be greater than 0"),
    "a CA rotation without a certificate lifetime": (
        silo(identity={"certificateAuthority": {"rotation": 1}}),
        "certificateAuthority is set without certificateLifetime",
    ),
    "a negative CA rotation": (
        silo(identity={"certificateLifetime": "1h", "certificateAuthority": {"rotation": -1}}),
        "spec.identity.certificateAuthority.rotation in body should be greater than or equal to 0",
    ),
    "a CA rotation without its counter": (
        silo(identity={"certificateLifetime": "1h", "certificateAuthority": {}}),
        "spec.identity.certificateAuthority.rotation: Required value",
    ),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_the_api_server_rejects_an_invalid_object_saying_why(cluster: ControlPlane, namespace: str, case: str) -> None:
    obj, message = INVALID[case]
    assert message in server_says(cluster, namespace, obj)


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_the_models_reject_what_the_api_server_rejects(case: str) -> None:
    obj, _ = INVALID[case]
    documents = (
        [obj]
        if obj["kind"] == "FederatedJob"
        else [job(silos=["hospital-a"], minSilos=1, aggregation={"mode": "plain"}), obj]
    )
    with pytest.raises(ManifestError):
        parse_manifest(yaml.safe_dump_all(documents))


def test_the_aggregation_mode_cannot_be_weakened_after_creation(cluster: ControlPlane, namespace: str) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(job()))
    plain = job(aggregation={"mode": "plain"})
    with pytest.raises(KubectlError) as refused:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(plain))
    assert "spec.aggregation cannot change once the job exists" in refused.value.stderr


def test_a_silos_ca_rotation_counter_may_only_be_raised(cluster: ControlPlane, namespace: str) -> None:
    rotated = silo(identity={"certificateLifetime": "1h", "certificateAuthority": {"rotation": 2}})
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(rotated))
    lowered = silo(identity={"certificateLifetime": "1h", "certificateAuthority": {"rotation": 1}})
    with pytest.raises(KubectlError) as refused:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(lowered))
    assert "spec.identity.certificateAuthority.rotation may only be raised" in refused.value.stderr
    raised = silo(identity={"certificateLifetime": "1h", "certificateAuthority": {"rotation": 3}})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(raised))


def test_kubectl_explain_teaches_the_silos_ca_rotation(cluster: ControlPlane) -> None:
    rotation = " ".join(cluster.kubectl("explain", "silo.spec.identity.certificateAuthority.rotation").stdout.split())
    for said in ("rotate the silo's CA now", "publishes both CAs", "no pod restarts", "May only be raised"):
        assert said in rotation
    status = " ".join(cluster.kubectl("explain", "silo.status.certificateAuthority").stdout.split())
    assert "retireAfter" in status and "retiring" in status


@pytest.mark.parametrize(("created", "edited"), [(0, 10), (10, 0)], ids=["to training", "to statistics only"])
def test_a_job_cannot_change_between_statistics_only_and_training(
    cluster: ControlPlane, namespace: str, created: int, edited: int
) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(job(rounds=created, data=STATISTICS)))
    with pytest.raises(KubectlError) as refused:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(job(rounds=edited, data=STATISTICS)))
    assert "spec.rounds cannot change between 0 (a statistics-only job) and a number of rounds" in refused.value.stderr
    # A job that trains may still change its number of rounds (docs/immutability.md).
    if created:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(job(rounds=created + 5, data=STATISTICS)))


@pytest.mark.parametrize("example", sorted(EXAMPLES.rglob("*.yaml")), ids=lambda path: path.name)
def test_the_api_server_accepts_every_example(cluster: ControlPlane, namespace: str, example: Any) -> None:
    cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(example))


def test_kubectl_explain_teaches_the_job_spec(cluster: ControlPlane) -> None:
    explained = cluster.kubectl("explain", "federatedjob.spec", "--recursive").stdout
    for field in ("minSilos", "aggregation", "noiseMultiplier", "normCap", "enum: masked, plain"):
        assert field in explained
    described = cluster.kubectl("explain", "federatedjob.spec.minSilos").stdout
    assert "Quorum" in described
    assert "Default: 2." in described and "at most 1000" in described
    immutable = cluster.kubectl("explain", "federatedjob.spec.privacy").stdout
    assert "Immutable" in immutable
    kind = " ".join(cluster.kubectl("explain", "federatedjob").stdout.split())
    assert "With rounds 0 the job is statistics-only" in kind
    rounds = " ".join(cluster.kubectl("explain", "federatedjob.spec.rounds").stdout.split())
    assert "0 makes a statistics-only job" in rounds and "at least 0" in rounds


def test_kubectl_explain_teaches_compression(cluster: ControlPlane) -> None:
    explained = cluster.kubectl("explain", "federatedjob.spec.compression", "--recursive").stdout
    for field in ("bits", "valueRange", "errorFeedback", "topK", "subset", "adaptive", "bytesBudget", "levels"):
        assert field in explained
    bits = " ".join(cluster.kubectl("explain", "federatedjob.spec.compression.bits").stdout.split())
    assert "Stochastic (unbiased) rounding" in bits and "ceil(log2 silos)" in bits
    subset = " ".join(cluster.kubectl("explain", "federatedjob.spec.compression.subset").stdout.split())
    assert "same fraction of coordinates" in subset and "works under masking" in subset


def test_omitted_blocks_show_their_defaults_in_the_wide_view(cluster: ControlPlane, namespace: str) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(job()))
    header, row = cluster.kubectl("get", "fj", "job", "-n", namespace, "-o", "wide").stdout.splitlines()[:2]

    def cell(column: str) -> str:  # empty cells make split() useless: read at the header's offset
        return row[header.index(column) :].split()[0]

    assert (cell("AGGREGATION"), cell("PRIVACY")) == ("masked", "none")


def test_the_silo_wide_view_across_namespaces_has_one_namespace_column(cluster: ControlPlane, namespace: str) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(silo(maxEpsilon=4.0)))
    header = cluster.kubectl("get", "silos", "-A", "-o", "wide").stdout.splitlines()[0].split()
    assert header.count("NAMESPACE") == 1 and "CEILING" in header


def test_printer_columns_show_in_kubectl_get(cluster: ControlPlane, namespace: str) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(job()))
    header = cluster.kubectl("get", "fj", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "PHASE", "ROUND", "SILOS", "EPSILON", "AGE"]
    wide = cluster.kubectl("get", "fedsilo", "-n", namespace, "-o", "wide").stdout
    assert "AGGREGATION" in wide and "DENIALS" in wide
