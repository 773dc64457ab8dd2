"""A job with federated preprocessing runs its statistics phase first, in its silos' own sidecar and trainer
processes, and its models name the fitted transform."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from fedsilo.datasets import FittedPreprocessing
from fedsilo.registry import LocalRegistry, preprocessing_path

from .conftest import ROOT


def test_the_tabular_example_fits_its_preprocessing_and_versions_it_with_every_model(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all((ROOT / "examples" / "tabular.yaml").read_text()))
    documents[0]["spec"]["rounds"] = 2
    documents[0]["spec"]["roundTimeoutSeconds"] = 600
    manifest = tmp_path / "tabular.yaml"
    manifest.write_text(yaml.safe_dump_all(documents))
    registry = tmp_path / "registry"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedsilo",
            "run",
            str(manifest),
            "--json",
            "--workdir",
            str(tmp_path / "run"),
            "--registry",
            str(registry),
            "--ledgers",
            str(tmp_path / "privacy"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout)
    assert report["statistics"] == str(tmp_path / "run" / "statistics" / "statistics.json")
    fitted = FittedPreprocessing.read(tmp_path / "run" / "statistics" / "preprocessing.json")
    models = LocalRegistry(registry).list("tabular")
    assert [m.lineage.round for m in models] == [1, 2]
    for model in models:
        assert model.lineage.evidence["preprocessing"] == fitted.digest()
    assert preprocessing_path(registry / "tabular", fitted.digest()).read_bytes() == fitted.canonical_bytes()
    # The phase ran on the hub's gRPC service: its outcome is in the run's audit log, before round 1's decisions.
    audit = [json.loads(line) for line in (tmp_path / "run" / "audit.jsonl").read_text().splitlines()]
    (phase,) = [r for r in audit if r.get("kind") == "operation" and r.get("operation") == "statistics"]
    assert phase["reason"] == "released" and phase["details"]["preprocessing_digest"] == fitted.digest()
    decisions = [r for r in audit if r.get("kind") == "decision"]
    assert decisions[0]["input"]["job"]["phase"] == "statistics"
    assert audit.index(phase) < next(
        i for i, r in enumerate(audit) if r.get("input", {}).get("job", {}).get("phase") == "training"
    )
    # The phase ran in the job's own processes: each sidecar took its trainer's totals over the link
    # and handed it the released transform, which the trainer applied before building its model.
    for silo in documents[0]["spec"]["silos"]:
        logs = tmp_path / "run" / "silos" / silo
        sidecar_log = (logs / "sidecar.log").read_text()
        assert f"the trainer applies the fitted preprocessing {fitted.digest()}" in sidecar_log
        assert f"takes the fitted preprocessing {fitted.digest()}" in (logs / "trainer.log").read_text()
    key = (tmp_path / "run" / "aggregator-key.pub").read_text().strip()
    verify = subprocess.run(
        [sys.executable, "-m", "fedsilo", "models", "verify", "--registry", str(registry), "--key", key],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
