"""Rolling a run back and forgetting a silo retrain from a kept checkpoint; the lineage keeps nothing discarded.

One real run (the quickstart with a fourth silo, masked, two rounds: the fewest that leave a round
to discard after the kept one) is rolled back to round 1 with
``fedsilo models rollback`` and then made to forget hospital-c with ``fedsilo unlearn``, each
retraining at once. Afterwards the registry's sealed lineage holds no update of a discarded
round and, after unlearning, none of hospital-c; both operations are records in an audit
log that still verifies, and the discarded models are kept aside, not deleted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fedsilo.api import load_manifest
from fedsilo.registry import LocalRegistry
from fedsilo.runner import LocalRun, RecoveryReport, RunOptions

from .conftest import quick_manifest

TIMEOUT = 900
SILOS = ["hospital-a", "hospital-b", "hospital-c", "hospital-d"]
ROUNDS = 2
#: Every round of the job, and those after the kept round 1 that a rollback to it discards.
ALL, LATER = tuple(range(1, ROUNDS + 1)), tuple(range(2, ROUNDS + 1))
# Whole runs, one after another, on a machine that may be loaded: minutes each.
pytestmark = pytest.mark.timeout(3600)


def _fedsilo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedsilo", *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def _report(run: Path, operation: str) -> RecoveryReport:
    (path,) = sorted((run / "recovery").glob(f"*-{operation}.json"))
    return RecoveryReport.parse(path.read_bytes())


def _operations(run: Path) -> list[tuple[str, int]]:
    records = map(json.loads, (run / "audit.jsonl").read_text().splitlines())
    return [(r["operation"], r["round"]) for r in records if r["kind"] == "operation"]


def _verified(run: Path, registry: Path) -> None:
    key = str(run / "aggregator-key.pub")
    audit = _fedsilo("audit", "verify", str(run / "audit.jsonl"), "--key", key)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    models = _fedsilo("models", "verify", "--registry", str(registry), "--key", key)
    assert models.returncode == 0, models.stdout + models.stderr


def test_rollback_and_unlearning_leave_no_discarded_update_in_the_lineage(tmp_path: Path) -> None:
    # Four silos: without the forgotten one, three remain, which masking needs.
    manifest = quick_manifest(tmp_path, rounds=ROUNDS, roundTimeoutSeconds=300, silos=SILOS)
    documents = list(yaml.safe_load_all(manifest.read_text()))
    documents.append({**documents[-1], "metadata": {"name": "hospital-d"}})
    manifest.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    run, registry = tmp_path / "run", tmp_path / "registry"
    options = RunOptions(manifest_path=manifest, workdir=run, registry=registry, baseline=False)
    first = LocalRun(load_manifest(manifest), options).execute()
    assert first.status == "succeeded", first.failure
    models = LocalRegistry(registry)
    before = {n: models.show("quickstart", n).lineage for n in ALL}

    rolled = _fedsilo(
        "models", "rollback", str(run), "--to-round", "1", "--reason", "round 2 was poisoned", "--no-baseline"
    )
    assert rolled.returncode == 0, rolled.stderr[-3000:]
    report = _report(run, "rollback")
    assert (report.to_round, report.from_round) == (1, ROUNDS)
    assert [(d.round, d.update_digests) for d in report.discarded] == [(n, before[n].update_digests) for n in LATER]
    after = {n: models.show("quickstart", n).lineage for n in ALL}
    assert after[1] == before[1]
    assert after[2].parent_digest == before[1].model_digest
    discarded = {digest for d in report.discarded for digest in d.update_digests.values()}
    assert not discarded & {digest for n in LATER for digest in after[n].update_digests.values()}
    assert len(list((registry / "quickstart" / "discarded").glob("*/round-*.json"))) == len(LATER)
    assert _operations(run)[-2:] == [("rollback", 1), ("resume", 1)]
    _verified(run, registry)

    forgot = _fedsilo("unlearn", str(run), "--silo", "hospital-c", "--reason", "consent withdrawn", "--no-baseline")
    assert forgot.returncode == 0, forgot.stderr[-3000:]
    report = _report(run, "unlearn")
    # hospital-c took part from round 1 on: only the initial model holds nothing of it.
    assert (report.to_round, report.forgotten) == (0, ("hospital-c",))
    assert [d.round for d in report.discarded] == list(ALL)
    assert any("hospital-c" in d.update_digests for d in report.discarded)
    for n in ALL:
        lineage = models.show("quickstart", n).lineage
        assert "hospital-c" not in lineage.participants and "hospital-c" not in lineage.update_digests
        assert sorted(lineage.participants) == ["hospital-a", "hospital-b", "hospital-d"]
    assert _operations(run)[-2:] == [("unlearn", 0), ("resume", 0)]
    assert json.loads((run / "run.json").read_text())["excluded"] == ["hospital-c"]
    _verified(run, registry)
