"""A masked job on the sparse neighbour graph with a real hub (coordinator, mTLS gRPC, embedded
Rego, audit log) and real sidecars whose trainers answer at once: the global model moves by the
weighted mean of the updates, and the round's graph (kind, degree, threshold, seed) is in the
audit log, which verifies with it, and in the round's summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fedsilo.api import FederatedJob
from fedsilo.audit import verify_audit_log
from fedsilo.protocol import TensorLayout, Weights
from fedsilo.secagg import graph_seed
from fedsilo_testing.loopback_job import run_loopback_job

# Eight silos, one of them colluding and one dropping: the bound takes degree 4 and threshold 2.
SILOS = tuple(f"silo-{i}" for i in range(8))
RECORDS = {silo: 100 * (i + 1) for i, silo in enumerate(SILOS)}
WEIGHTS: Weights = {"w": np.zeros((20, 30), np.float32), "b": np.zeros(30, np.float32)}


def _delta(silo: str, round_number: int) -> np.ndarray:
    """Each silo's update, the same in every round."""
    size = TensorLayout.of(WEIGHTS).size
    return np.random.default_rng(SILOS.index(silo)).uniform(-1, 1, size).astype(np.float32)


@pytest.mark.integration
def test_a_sparse_masked_round_sums_the_updates_and_records_its_graph(tmp_path: Path) -> None:
    job = FederatedJob.model_validate(
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "FederatedJob",
            "metadata": {"name": "sparse"},
            "spec": {
                "silos": list(SILOS),
                "minSilos": len(SILOS),
                "rounds": 1,
                "roundTimeoutSeconds": 60,
                "model": {"builtin": "mlp"},
                "aggregation": {
                    "clipRange": 1.0,
                    "neighbours": {"graph": "sparse", "colludingFraction": 0.125, "dropoutFraction": 0.125},
                },
                "policy": {"normCap": 1e6, "dataClass": "internal"},
            },
        }
    )
    run = run_loopback_job(job, WEIGHTS, RECORDS, _delta, tmp_path)
    (summary,) = run.summaries

    assert summary.void is None and sorted(summary.accepted) == sorted(SILOS)
    model = run.models[1].astype(np.float64)
    expected = sum(RECORDS[s] * np.clip(_delta(s, 1), -1.0, 1.0).astype(np.float64) for s in SILOS) / sum(
        RECORDS.values()
    )
    np.testing.assert_allclose(model, expected, atol=1e-4)

    seed = graph_seed("sparse", 1).hex()
    assert summary.graph is not None
    assert {k: summary.graph[k] for k in ("graph", "degree", "threshold", "seed")} == {
        "graph": "sparse",
        "degree": 4,
        "threshold": 2,
        "seed": seed,
    }
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    (graph,) = [r for r in records if r["kind"] == "operation" and r["operation"] == "neighbour_graph"]
    assert graph["round"] == 1 and graph["details"]["seed"] == seed and graph["details"]["degree"] == 4
    assert graph["details"]["colluding_fraction"] == 0.125 and graph["details"]["hub"] == "curious"
    # The graph's record is one an auditor's verify accepts (it once named an operation the reader refused).
    verify_audit_log(tmp_path / "audit.jsonl", run.audit_key)
