"""A silo that takes part in its statistics phase again (the hub died mid-phase) releases nothing new and pays once.

The sidecar draws its statistics noise from one seed for all its attempts, so the noised totals
it sends again are the ones it sent before; its ledger holds one charge for the run's phase,
and a ceiling the first charge fitted under does not shut the silo out of the second attempt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedsilo.api import load_manifest
from fedsilo.datasets import load_raw_silo_data
from fedsilo.identity import SigningKey
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.runner import run_statistics
from fedsilo.sidecar import SidecarConfig, statistics_member
from fedsilo.statistics import STATISTICS_ROUND, RecordTotals

from .conftest import silos_of, tabular_spec

ROOT = Path(__file__).parents[2]


def test_the_same_seed_sends_the_same_noised_totals_and_another_seed_does_not(tmp_path: Path) -> None:
    manifest = load_manifest(ROOT / "examples" / "tabular.yaml")
    document = manifest.job.model_dump(by_alias=True, exclude_none=True)
    document["spec"]["data"]["preprocessing"]["epsilon"] = 1.0
    job = type(manifest.job).model_validate(document)
    config = SidecarConfig(
        job=job, silo="bank-a", aggregator="localhost:1", peer_keys={}, ledger=tmp_path / "a.sqlite", run_id="r1"
    )
    records = load_raw_silo_data(job.spec, 0, len(job.spec.silos), None).train_x
    key = SigningKey.generate()

    def moments(seed: int) -> np.ndarray:
        with statistics_member(config, key, RecordTotals(records), noise_seed=seed) as member:
            assert member.decline() is None
            return member.moments()

    first, again, other = moments(11), moments(11), moments(12)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    with PrivacyLedger(tmp_path / "a.sqlite", read_only=True) as ledger:
        (charge,) = ledger.history("bank-a")
    assert charge.round == STATISTICS_ROUND


def test_a_phase_taken_part_in_again_is_charged_once_even_next_to_the_ceiling(tmp_path: Path) -> None:
    spec = tabular_spec({"scaling": "standardize", "epsilon": 1.0})
    ledgers = {name: tmp_path / f"{name}.sqlite" for name in spec.silos}
    # Room for one statistics charge, not for two: a second charge would shut every silo out.
    silos = silos_of(spec, ledgers=ledgers, ceilings=dict.fromkeys(spec.silos, 1.5))
    for _ in range(2):
        assert run_statistics("again/run-1", spec, silos).statistics.excluded == ()
    for name, path in ledgers.items():
        with PrivacyLedger(path, read_only=True) as ledger:
            (charge,) = ledger.history(name)
        assert charge.round == STATISTICS_ROUND and charge.epsilon_job <= 1.0 + 1e-3
