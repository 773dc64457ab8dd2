"""A private statistics release is charged to the hub's ledger too, as the silos' own ledgers charge it (#14, #15).

The hub charges every silo whose noised totals it admits, under the silo's own key and with
the silo's mechanism, so the two ledgers agree; a silo left out by the minimum count is charged
nothing; a phase taken again charges nothing more; the hub's ceiling counts what its ledger
holds; exact statistics create no hub ledger at all. Everything runs the phase over real
mutual-TLS gRPC on loopback (``run_statistics``) or the ``fedsilo stats`` entry point.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fedsilo.api import FederatedJobSpec, Manifest, load_manifest
from fedsilo.identity import SigningKey, load_signing_key
from fedsilo.launch import AGGREGATOR_KEY
from fedsilo.privacy.ledger import PrivacyLedger, compare_ledgers, describe_mechanism, verify_ledger
from fedsilo.runner import build_gate, run_statistics, statistics_phase
from fedsilo.statistics import (
    BELOW_MIN_COUNT,
    STATISTICS_ROUND,
    SiloRecords,
    StatisticsPlan,
    statistics_key,
)

from .conftest import silos_of, tabular_spec

ROOT = Path(__file__).parents[2]
RUN = "dp-job/run-1"


def _private_spec() -> FederatedJobSpec:
    # Training without DP: only the statistics are private (spec.privacy.mode none).
    spec = tabular_spec({"scaling": "standardize", "epsilon": 1.0, "minCount": 50})
    assert spec.privacy.mode.value == "none"
    return spec


def _with_small_last_silo(silos: list[SiloRecords]) -> list[SiloRecords]:
    last = silos[-1]
    return [*silos[:-1], SiloRecords(last.name, last.records[:20], last.signing_key, last.ledger, last.max_epsilon)]


def _audit(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_hub_charges_each_included_silo_under_its_own_key_and_the_two_ledgers_agree(tmp_path: Path) -> None:
    spec = _private_spec()
    own = {name: tmp_path / "silos" / f"{name}.sqlite" for name in spec.silos}
    silos = _with_small_last_silo(silos_of(spec, ledgers=own))
    hub_key, state = SigningKey.generate(), tmp_path / "hub"
    state.mkdir()
    gate = build_gate(state, hub_key)
    with PrivacyLedger(tmp_path / "hub.sqlite", hub_key) as hub:
        try:
            release = run_statistics(RUN, spec, silos, gate=gate, hub_ledger=hub, rng=np.random.default_rng(3))
        finally:
            gate.audit.close()
        included, (left_out,) = release.statistics.silos, release.statistics.excluded
        assert included == ("bank-a", "bank-b", "bank-c")
        assert left_out.silo == "bank-d" and left_out.reason.startswith(BELOW_MIN_COUNT)
        plan = StatisticsPlan.for_job(RUN, spec, silos[0].records.shape[1])
        charged = {charge.silo: charge for charge in hub.history()}
        assert set(charged) == set(included), "one row per included silo, none for the silo below minCount"
        for silo in included:
            with PrivacyLedger(own[silo], read_only=True) as theirs:
                (mine,) = theirs.history(silo)
                agreement = compare_ledgers(hub, theirs, silo)
            row = charged[silo]
            assert row.idempotency_key == mine.idempotency_key == statistics_key(plan, silo)
            assert (row.job, row.round, row.mechanism) == (RUN, STATISTICS_ROUND, mine.mechanism)
            assert "(statistics)" in describe_mechanism(row.mechanism)
            assert row.epsilon_job == mine.epsilon_job and row.acknowledged_at is not None
            assert agreement.agree and agreement.only_silo == (), agreement
            assert release.epsilon_spent[silo] == row.epsilon_job
        with PrivacyLedger(own["bank-d"], read_only=True) as small:
            assert small.history() == (), "a silo below minCount charges nothing either"
        verify_ledger(hub.path, hub_key.public_key)

    records = _audit(state / "audit.jsonl")
    admitted = [r for r in records if r.get("kind") == "decision" and r["decision"] == "allow"]
    # Pass 1 charged each silo; pass 2 found the charge: the same figures, nothing more.
    for record in admitted:
        ledger = record["input"]["ledger"]
        assert ledger["epsilon_if_accepted"] == release.epsilon_spent[record["silo"]]
        assert ledger["epsilon_spent"] == (
            0.0 if record["input"]["update"]["round"] == 1 else ledger["epsilon_if_accepted"]
        )
    (released,) = [r for r in records if r.get("kind") == "operation" and r.get("operation") == "statistics"]
    assert released["details"]["epsilon_spent"] == dict(release.epsilon_spent)


def test_a_phase_taken_again_in_the_same_run_charges_the_hub_nothing_more(tmp_path: Path) -> None:
    spec = _private_spec()
    silos = silos_of(spec, ledgers={name: tmp_path / f"{name}.sqlite" for name in spec.silos})
    with PrivacyLedger(tmp_path / "hub.sqlite") as hub:
        first = run_statistics(RUN, spec, silos, hub_ledger=hub).epsilon_spent
        rows = hub.history()
        again = run_statistics(RUN, spec, silos, hub_ledger=hub).epsilon_spent
        assert hub.history() == rows and len(rows) == len(spec.silos)
    assert again == first


def test_the_hub_leaves_out_a_silo_whose_ceiling_its_ledger_says_the_release_would_cross(tmp_path: Path) -> None:
    spec = _private_spec()
    with PrivacyLedger(tmp_path / "hub.sqlite") as hub:
        # An earlier run's statistics: the hub's ledger holds them, bank-c's fresh ledger does not.
        # Two releases of epsilon 1 compose (RDP) to about 1.46: above bank-c's 1.2, one alone is not.
        run_statistics("dp-job/run-0", spec, silos_of(spec), hub_ledger=hub)
        silos = silos_of(spec, ledgers={"bank-c": tmp_path / "fresh-c.sqlite"}, ceilings={"bank-c": 1.2})
        statistics = run_statistics(RUN, spec, silos, hub_ledger=hub).statistics
        (excluded,) = statistics.excluded
        assert excluded.silo == "bank-c" and excluded.reason.startswith("silo_epsilon_exceeded:"), excluded
        assert "above the silo's own ceiling 1.2" in excluded.reason
        assert hub.charged("bank-c", RUN, STATISTICS_ROUND) is None, "refused: the hub charges nothing"
        assert {c.silo for c in hub.history(job=RUN)} == {"bank-a", "bank-b", "bank-d"}


def test_exact_statistics_charge_nothing_and_create_no_hub_ledger(tmp_path: Path) -> None:
    manifest = load_manifest(ROOT / "examples" / "tabular.yaml")
    preprocessing = manifest.job.spec.data.preprocessing
    assert (
        preprocessing is not None and preprocessing.epsilon is None and manifest.job.spec.privacy.mode.value == "none"
    )
    statistics_phase(manifest, tmp_path / "out", run_name="tabular/exact", ledgers=tmp_path / "privacy")
    assert not (tmp_path / "privacy").exists(), "no ledger, hub's or silo's, for a job that charges none"


def test_fedsilo_stats_charges_the_hub_ledger_beside_the_silos_signed_with_the_hub_key(tmp_path: Path) -> None:
    manifest = load_manifest(ROOT / "examples" / "tabular.yaml")
    document = manifest.job.model_dump(by_alias=True, exclude_none=True)
    document["spec"]["data"]["preprocessing"]["epsilon"] = 2.0
    private = Manifest(type(manifest.job).model_validate(document), manifest.silos)
    ledgers = tmp_path / "privacy"
    files = statistics_phase(private, tmp_path / "out", run_name="tabular/private", ledgers=ledgers)
    # Signed with the hub key kept beside the ledgers, as ``fedsilo run --ledgers`` signs the hub's.
    verify_ledger(ledgers / "hub.sqlite", load_signing_key(ledgers / AGGREGATOR_KEY).public_key)
    with PrivacyLedger(ledgers / "hub.sqlite", read_only=True) as hub:
        assert {c.silo for c in hub.history(job="tabular/private")} == set(files.statistics.silos)
        for silo in files.statistics.silos:
            with PrivacyLedger(ledgers / "silos" / f"{silo}.sqlite", read_only=True) as own:
                assert compare_ledgers(hub, own, silo).agree
