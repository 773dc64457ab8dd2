"""Jobs with differential privacy, end to end: each sidecar charges its own ledger, the hub charges
its ledger from the signed mechanisms, both agree, and a ceiling stops a silo before it is crossed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fedsilo.api import load_manifest
from fedsilo.identity import PUBLIC_KEY_FILE
from fedsilo.privacy import DpSgdEvent, GaussianEvent, epsilon_for
from fedsilo.privacy.ledger import PrivacyLedger, compare_ledgers
from fedsilo.registry import LocalRegistry
from fedsilo.runner import LocalRun, RunOptions, RunReport

from .conftest import quick_manifest

pytestmark = pytest.mark.e2e


def _run(path: Path, tmp_path: Path, ledgers: Path | None = None) -> tuple[RunReport, RunOptions]:
    options = RunOptions(
        manifest_path=path,
        workdir=tmp_path / "run",
        registry=tmp_path / "registry",
        ledgers=ledgers or tmp_path / "privacy",
        baseline=False,
    )
    return LocalRun(load_manifest(path), options).execute(), options


def _privacy(**fields: Any) -> dict[str, Any]:
    return {"delta": 1e-5, "accountant": "rdp", **fields}


def test_record_level_dp_spends_at_most_the_target_both_sides_agree_and_the_command_line_shows_it(
    tmp_path: Path,
) -> None:
    path = quick_manifest(
        tmp_path,
        rounds=2,
        privacy=_privacy(mode="record", targetEpsilon=3.0, maxGradNorm=1.0),
        policy={"normCap": 20.0, "dataClass": "sensitive", "maxEpsilon": 3.0},
    )
    ledgers = tmp_path / "privacy"
    names = ("hospital-a", "hospital-b", "hospital-c")

    def fedsilo(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "fedsilo", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)

    run = fedsilo(
        "run",
        str(path),
        "--no-baseline",
        "--workdir",
        str(tmp_path / "run"),
        "--registry",
        str(tmp_path / "reg"),
        "--ledgers",
        str(ledgers),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "epsilon spent up to" in run.stderr, "the per-round progress lines carry epsilon"
    assert "hospital-a" in run.stdout and "epsilon" in run.stdout, "the table has an epsilon column per silo"
    assert (tmp_path / "run" / "accuracy-epsilon.png").stat().st_size > 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert all(len(row["accepted"]) == 3 for row in report["rounds"])
    for silo in names:
        curve = [row["epsilon_spent"][silo] for row in report["rounds"]]
        assert curve == sorted(curve) and curve[0] > 0, curve
        # Calibrated to the target over the job's two rounds: spent, not exceeded.
        assert 2.9 < curve[-1] <= 3.0 + 1e-9
        assert report["epsilon_spent"][silo] == curve[-1]

    with PrivacyLedger(ledgers / "hub.sqlite") as hub:
        hub.verify()
        hub_rows = {(c.silo, c.round): c for c in hub.history()}
        assert len(hub_rows) == 6 and all(c.acknowledged_at for c in hub_rows.values())
        for silo in names:
            with PrivacyLedger(ledgers / "silos" / f"{silo}.sqlite") as own:
                own.verify()
                # The silo charged before sending; the hub charged the same signed mechanism, round by round.
                agreement = compare_ledgers(hub, own, silo)
                assert agreement.agree and not agreement.only_silo, agreement
                for charge in own.history():
                    assert isinstance(charge.mechanism, DpSgdEvent)
                    assert charge.idempotency_key == hub_rows[(silo, charge.round)].idempotency_key
                    assert charge.acknowledged_at is not None
                assert own.epsilon_spent(silo, delta=1e-5) == pytest.approx(report["epsilon_spent"][silo])

    shown = fedsilo("ledger", "show", str(ledgers / "hub.sqlite"), "--json")
    assert shown.returncode == 0, shown.stderr
    silos = {entry["silo"]: entry for entry in json.loads(shown.stdout)}
    assert silos["hospital-b"]["epsilon_lifetime"] == pytest.approx(report["epsilon_spent"]["hospital-b"])
    assert [r["round"] for r in silos["hospital-b"]["jobs"][0]["rounds"]] == [1, 2]
    verified = fedsilo("ledger", "verify", str(ledgers / "silos" / "hospital-b.sqlite"))
    assert verified.returncode == 0 and "2 charges, chain intact" in verified.stdout
    # Signed: the silo's ledger with the silo's identity key, the hub's with the key kept beside it.
    silo_key = tmp_path / "run" / "silos" / "hospital-b" / "identity" / PUBLIC_KEY_FILE
    verified = fedsilo("ledger", "verify", str(ledgers / "silos" / "hospital-b.sqlite"), "--key", str(silo_key))
    assert verified.returncode == 0 and "every row signed" in verified.stdout, verified.stderr
    hub_key = str(ledgers / "aggregator-key.pub")
    assert fedsilo("ledger", "verify", str(ledgers / "hub.sqlite"), "--key", hub_key).returncode == 0
    # Each round's lineage carries the signed heads, outside the files: the last round's verify.
    evidence = LocalRegistry(tmp_path / "reg").show(report["job"]).lineage.evidence
    for name, head in evidence.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(head))
    audit = fedsilo(
        "audit",
        "verify",
        str(tmp_path / "run" / "audit.jsonl"),
        "--key",
        str(tmp_path / "run" / "aggregator-key.pub"),
        "--head",
        str(tmp_path / "audit_head.json"),
    )
    assert audit.returncode == 0 and "holds the published head" in audit.stdout, audit.stderr
    ledger_head = str(tmp_path / "ledger_head.json")
    assert (
        fedsilo("ledger", "verify", str(ledgers / "hub.sqlite"), "--key", hub_key, "--head", ledger_head).returncode
        == 0
    )
    missing = fedsilo("ledger", "show", str(tmp_path / "nowhere.sqlite"))
    assert missing.returncode == 2 and "no ledger at" in missing.stderr


def test_silo_level_dp_stops_a_silo_before_its_lifetime_ceiling_and_earlier_runs_count(tmp_path: Path) -> None:
    # One Gaussian release at sigma 2 costs 2.17, two cost 3.19: hospital-a's ceiling of 3 allows one.
    path = quick_manifest(
        tmp_path,
        rounds=2,
        roundTimeoutSeconds=10,
        aggregation={"mode": "plain"},
        privacy=_privacy(mode="silo", noiseMultiplier=2.0),
        policy={"normCap": 1.0, "dataClass": "internal", "maxEpsilon": 10.0},
    )
    manifest = path.read_text().replace("displayName: Hospital A", "displayName: Hospital A\n  maxEpsilon: 3.0")
    path.write_text(manifest)
    report, options = _run(path, tmp_path)
    assert report.status == "succeeded", report.failure
    first, second = report.rounds
    assert "hospital-a" in first.accepted
    # Silo-level DP: one Gaussian release per round, charged by both sides.
    one_release = epsilon_for([GaussianEvent(2.0, 1)], 1e-5)
    assert all(value == pytest.approx(one_release) for value in first.epsilon.values())
    with PrivacyLedger(options.hub_ledger()) as hub:
        assert {c.mechanism for c in hub.history()} == {GaussianEvent(2.0, 1)}
        assert hub.epsilon_spent("hospital-b", delta=1e-5) == pytest.approx(epsilon_for([GaussianEvent(2.0, 2)], 1e-5))
    assert "hospital-a" in second.dropped, "its sidecar withheld the update that would cross the ceiling"
    with PrivacyLedger(options.silo_ledger("hospital-a")) as own:
        assert [c.round for c in own.history()] == [1]
    # A second run for the same silo: its lifetime ceiling remembers the first run's spend.
    report, _ = _run(path, tmp_path / "again", ledgers=options.ledgers)
    assert report.status == "succeeded", report.failure
    assert "hospital-a" in report.rounds[0].dropped
    assert not any("hospital-a" in row.accepted for row in report.rounds)
