"""A whole local run with FedBN normalization and a FedPer head kept in each silo, and fine-tuning at the end.

Every message the sidecars send the hub and every model the hub serves is captured as the
bytes that crossed the real mutual-TLS gRPC connection (``fedsilo_testing.wire``, recording in
the hub's process); neither they nor any file of the registry hold a private parameter, and the updates are sized to the shared parameters alone.
The report shows each silo's score, the worst silo and the spread, before and after fine-tuning.
"""

from __future__ import annotations

import json
from pathlib import Path

from fedsilo.api import load_manifest
from fedsilo.protocol import EvaluationReport, TensorLayout, UpdateMetadata, decode_weights, pb
from fedsilo.registry import LocalRegistry
from fedsilo.runner import LocalRun, RunOptions
from fedsilo_testing.wire import WireRecorder

from .conftest import quick_manifest

# mlp [64] with batch normalization: layers.0 Linear, layers.1 BatchNorm1d, layers.2 ReLU, layers.3 Linear.
PRIVATE_MODULES = (b"layers.1.", b"layers.3.")
SHARED = {"layers.0.weight", "layers.0.bias"}


def test_private_layers_never_cross_the_wire_or_reach_the_registry_and_fine_tuning_is_reported(
    tmp_path: Path,
) -> None:
    path = quick_manifest(
        tmp_path,
        rounds=2,
        # Also the time silos get to join: generous, as the trainers import torch on a shared machine.
        roundTimeoutSeconds=300,
        model={"builtin": "mlp", "hiddenSizes": [64], "normalization": "batch"},
        data={"source": "digits", "partition": {"scheme": "dirichlet", "alpha": 0.1}},
        personalization={"privateHead": True, "privateNormalization": True, "fineTuneEpochs": 3},
    )
    registry = tmp_path / "registry"
    report = LocalRun(
        load_manifest(path),
        RunOptions(manifest_path=path, workdir=tmp_path / "run", registry=registry, baseline=False),
        hub_setup=(wire := WireRecorder(tmp_path / "wire")),
    ).execute()
    assert report.status == "succeeded", report.failure

    # The models the hub served: the shared layer alone, every round.
    assert wire.models() and all(set(decode_weights(blob)) == SHARED for blob in wire.models())
    # Everything the sidecars sent: no private name in any message, updates sized to the shared layer.
    sent = [message for messages in wire.requests().values() for message in messages]
    assert sent and not [m for m in sent for name in PRIVATE_MODULES if name in m]
    shared_size = TensorLayout.of(decode_weights(wire.models()[0])).size
    updates = [pb.UpdateChunk.FromString(m) for m in wire.requests()["SubmitUpdate"]]
    claims = [UpdateMetadata.parse(u.metadata.metadata_json) for u in updates if u.HasField("metadata")]
    assert len(claims) == 6 and {c.vector_length for c in claims} == {shared_size + 1}
    assert sum(len(u.vector.data) for u in updates if u.HasField("vector")) == 6 * (shared_size + 1) * 4
    # The registry: neither a model nor a lineage names a private parameter.
    files = [p for p in registry.rglob("*") if p.is_file()]
    assert files and not [p for p in files for name in PRIVATE_MODULES if name in p.read_bytes()]
    lineage = LocalRegistry(registry).show("quickstart", 2).lineage
    assert set(lineage.metrics["parent_evaluation"]["claims"]) == {"hospital-a", "hospital-b", "hospital-c"}

    # Signed scores of fine-tuned models came in the closing evaluation, one per silo.
    stages = [
        EvaluationReport.parse(pb.SignedMetadata.FromString(m).metadata_json)
        for m in wire.requests()["ReportEvaluation"]
    ]
    assert sorted(r.silo for r in stages if r.stage == "personalized") == ["hospital-a", "hospital-b", "hospital-c"]
    assert {r.round for r in stages if r.stage == "personalized"} == {3}

    document = json.loads(report.to_json())
    last = report.rounds[-1]
    assert set(last.silo_accuracy) == {"hospital-a", "hospital-b", "hospital-c"}
    assert last.worst_accuracy == min(last.silo_accuracy.values())
    assert document["final_worst_silo"] == last.worst_silo
    assert set(document["personalization"]) == set(last.silo_accuracy)
    for silo, scores in document["personalization"].items():
        assert scores["before"] == last.silo_accuracy[silo]
        assert 0.0 <= scores["after"] <= 1.0
