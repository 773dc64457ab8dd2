"""A job with federated preprocessing runs its statistics phase first, in its silos' own sidecar and trainer
processes, and its models name the fitted transform; a hub killed during the phase is restarted and the job ends.

One run of the tabular example (two rounds, private statistics) serves every assertion: its hub
process is killed with SIGKILL in the statistics phase, between the first pass's unmasking and
the second pass (``fedsilo_testing.crash``, ``--kill 0:statistics``). The runner restarts it on
the same port, the live sidecars take part again with the noised totals they kept beside their
ledgers, and the phase is released once: each silo's ledger and the hub's hold one statistics
charge each, which agree, and the audit chain verifies across the death.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fedsilo.datasets import FittedPreprocessing
from fedsilo.identity import load_signing_key, read_identity
from fedsilo.launch import AGGREGATOR_KEY
from fedsilo.privacy.ledger import PrivacyLedger, compare_ledgers, verify_ledger
from fedsilo.registry import LocalRegistry, preprocessing_path
from fedsilo.statistics import STATISTICS_ROUND
from fedsilo_testing.crash import Kill, Phase, crash_command

from .conftest import ROOT

EPSILON = 1.0
# A whole run with a hub restart, on a machine that may be loaded: minutes.
pytestmark = pytest.mark.timeout(1800)


def test_the_tabular_example_fits_its_preprocessing_and_versions_it_with_every_model(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all((ROOT / "examples" / "tabular.yaml").read_text()))
    documents[0]["spec"]["rounds"] = 2
    documents[0]["spec"]["roundTimeoutSeconds"] = 600
    documents[0]["spec"]["data"]["preprocessing"]["epsilon"] = EPSILON
    manifest = tmp_path / "tabular.yaml"
    manifest.write_text(yaml.safe_dump_all(documents))
    registry = tmp_path / "registry"
    completed = subprocess.run(
        crash_command(manifest, tmp_path, [Kill(STATISTICS_ROUND, Phase.STATISTICS)]),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout)
    assert report["status"] == "succeeded", report["failure"]
    # The hub died in the phase, before any checkpoint: the runner restarted it from the job's start.
    (restart,) = report["hub_restarts"]
    assert "killed by SIGKILL" in restart["cause"] and restart["resumed_after"] is None
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
    # The restarted hub's resume follows the release it served, and names the death.
    (resume,) = [r for r in audit if r.get("kind") == "operation" and r.get("operation") == "resume"]
    assert resume["round"] == 0 and "the runner restarted it" in resume["reason"]
    assert audit.index(phase) < audit.index(resume)
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
        assert "went away during the statistics phase" in sidecar_log
        # Taken part in twice, charged once: the silo's own ledger, verified with its key.
        key = read_identity(logs / "identity").signing_key.public_key
        with PrivacyLedger(tmp_path / "ledgers" / "silos" / f"{silo}.sqlite", read_only=True) as ledger:
            ledger.verify(key=key)
            (charge,) = ledger.history(silo=silo)
        assert charge.round == STATISTICS_ROUND and charge.epsilon_job <= EPSILON + 1e-3
        # The hub's ledger charged the same row once too, and the two agree; the report starts from it.
        with (
            PrivacyLedger(tmp_path / "ledgers" / "hub.sqlite", read_only=True) as hub,
            PrivacyLedger(tmp_path / "ledgers" / "silos" / f"{silo}.sqlite", read_only=True) as own,
        ):
            agreement = compare_ledgers(hub, own, silo)
            assert agreement.agree and agreement.only_silo == (), agreement
            theirs = hub.charged(silo, charge.job, STATISTICS_ROUND)
            assert theirs is not None and theirs.idempotency_key == charge.idempotency_key
            assert len(hub.history(silo=silo)) == 1 and theirs.acknowledged_at is not None
        assert report["statistics_epsilon"][silo] == report["epsilon_spent"][silo] == charge.epsilon_job
        # What it released, kept beside its ledger: the second attempt sent these again.
        kept = (tmp_path / "ledgers" / "silos" / f"{silo}.sqlite.releases").glob("*-statistics-*.safetensors")
        assert sorted(path.name.rsplit("-", 1)[1] for path in kept) == ["histogram.safetensors", "moments.safetensors"]
    # Training ran without DP: every epsilon in the report is the statistics'.
    assert set(report["epsilon_spent"]) == set(documents[0]["spec"]["silos"])
    verify_ledger(
        tmp_path / "ledgers" / "hub.sqlite", load_signing_key(tmp_path / "ledgers" / AGGREGATOR_KEY).public_key
    )
    hub_key = str(tmp_path / "run" / "aggregator-key.pub")
    for check in (
        ["models", "verify", "--registry", str(registry)],
        ["audit", "verify", str(tmp_path / "run" / "audit.jsonl")],
    ):
        verify = subprocess.run(
            [sys.executable, "-m", "fedsilo", *check, "--key", hub_key],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
            check=False,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
