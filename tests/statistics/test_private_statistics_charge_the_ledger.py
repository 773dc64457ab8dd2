"""DP statistics are charged to every silo's own ledger, as a statistics release, before anything leaves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedsilo.privacy import epsilon_for
from fedsilo.privacy.ledger import PrivacyLedger, describe_mechanism
from fedsilo.runner import run_statistics
from fedsilo.statistics import STATISTICS_ROUND

from .conftest import silos_of, tabular_spec


def test_every_silo_ledger_records_a_statistics_charge_within_the_target(tmp_path: Path) -> None:
    spec = tabular_spec({"scaling": "standardize", "epsilon": 1.0})
    silos = silos_of(spec, ledgers={name: tmp_path / f"{name}.sqlite" for name in spec.silos})
    outcome = run_statistics("dp-job/run-1", spec, silos, rng=np.random.default_rng(5))
    assert outcome.statistics.privacy is not None and outcome.statistics.privacy.epsilon == 1.0
    for silo in spec.silos:
        with PrivacyLedger(tmp_path / f"{silo}.sqlite", read_only=True) as ledger:
            (charge,) = ledger.history(silo)
        assert charge.job == "dp-job/run-1" and charge.round == STATISTICS_ROUND
        assert "(statistics)" in describe_mechanism(charge.mechanism)
        assert charge.epsilon_job <= 1.0 + 1e-3
        assert np.isclose(charge.epsilon_job, epsilon_for([charge.mechanism], 1e-5), rtol=1e-9)
    # Noisy, but still close to the truth on thousands of records.
    pooled = np.concatenate([s.records for s in silos]).astype(np.float64)
    for feature in outcome.statistics.numeric[:3]:
        assert feature.mean is not None
        spread = pooled[:, feature.column].std()
        assert abs(feature.mean - pooled[:, feature.column].mean()) < 0.1 * spread


def test_a_silo_whose_ceiling_the_charge_would_cross_is_left_out(tmp_path: Path) -> None:
    spec = tabular_spec({"scaling": "standardize", "epsilon": 2.0})
    silos = silos_of(
        spec,
        ledgers={name: tmp_path / f"{name}.sqlite" for name in spec.silos},
        ceilings={"bank-d": 1.0},
    )
    statistics = run_statistics("ceiling", spec, silos).statistics
    (excluded,) = statistics.excluded
    assert excluded.silo == "bank-d" and excluded.reason.startswith("silo_epsilon_exceeded: "), excluded
    with PrivacyLedger(tmp_path / "bank-d.sqlite", read_only=True) as ledger:
        assert ledger.history("bank-d") == ()
