"""The sidecar's privacy guard: the silo's own ledger is charged before an update leaves, a restarted
sidecar never releases a second update for a round already charged, the ceilings stop a round
before it is trained, and the silo's own DP settings replace whatever the hub sent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedsilo.api import FederatedJobSpec, PrivacyMode
from fedsilo.privacy import GaussianEvent, epsilon_for, plan_for_silo
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.sidecar._privacy import PrivacyGuard, PrivacyWithheld

from ..datasets.conftest import job_spec


def _spec(**privacy: object) -> FederatedJobSpec:
    spec = job_spec()
    document = spec.model_dump(by_alias=True)
    document["privacy"] = {"delta": 1e-5, **privacy}
    return FederatedJobSpec.model_validate(document)


def _guard(path: Path, spec: FederatedJobSpec, silo_ceiling: float | None = None) -> PrivacyGuard:
    plan = plan_for_silo(spec, 400)
    assert plan is not None
    return PrivacyGuard(plan, PrivacyLedger(path), "a", "job/run-1", job_ceiling=None, silo_ceiling=silo_ceiling)


def test_a_restarted_sidecar_does_not_release_a_second_update_for_a_charged_round(tmp_path: Path) -> None:
    spec = _spec(mode="silo", noiseMultiplier=2.0)
    guard = _guard(tmp_path / "silo.sqlite", spec)
    event = guard.plan.round_event({})
    guard.check_budget(1, event)
    charge = guard.charge(1, event, "sha256:first")
    assert charge.acknowledged_at is None
    # The process dies before the hub answers; a new one opens the same ledger.
    restarted = _guard(tmp_path / "silo.sqlite", spec)
    with pytest.raises(PrivacyWithheld, match="round_already_charged"):
        restarted.check_budget(1, event)
    with pytest.raises(PrivacyWithheld, match="round_already_charged"):
        restarted.charge(1, event, "sha256:second")
    # Charging the very same release again is the same row, not a second charge.
    assert restarted.charge(1, event, "sha256:first").seq == charge.seq
    restarted.acknowledge(1)
    with PrivacyLedger(tmp_path / "silo.sqlite") as ledger:
        assert len(ledger.history()) == 1 and ledger.history()[0].acknowledged_at is not None


def test_the_lifetime_ceiling_withholds_the_round_that_would_cross_it(tmp_path: Path) -> None:
    spec = _spec(mode="silo", noiseMultiplier=2.0)
    one, two = (epsilon_for([GaussianEvent(2.0, n)], 1e-5) for n in (1, 2))
    guard = _guard(tmp_path / "silo.sqlite", spec, silo_ceiling=(one + two) / 2)
    event = guard.plan.planned_event()
    guard.check_budget(1, event)
    guard.charge(1, event, "sha256:one")
    with pytest.raises(PrivacyWithheld, match="silo_epsilon_exceeded"):
        guard.check_budget(2, event)


def test_record_mode_sends_the_silos_own_dp_settings_to_the_trainer(tmp_path: Path) -> None:
    spec = _spec(mode="record", noiseMultiplier=1.3, maxGradNorm=0.5)
    guard = _guard(tmp_path / "silo.sqlite", spec)
    hub_config = {"round": 1, "dp": {"noise_multiplier": 0.01, "max_grad_norm": 100.0, "delta": 0.5}}
    assert guard.fit_config(hub_config)["dp"] == {"noise_multiplier": 1.3, "max_grad_norm": 0.5, "delta": 1e-5}
    assert guard.plan.mode is PrivacyMode.RECORD and not guard.uniform_weights


def test_silo_mode_noise_has_the_planned_spread_and_stays_in_the_fixed_point_range(tmp_path: Path) -> None:
    spec = _spec(mode="silo", noiseMultiplier=0.5)
    guard = _guard(tmp_path / "silo.sqlite", spec)
    assert guard.uniform_weights
    std = guard.plan.noise_std
    assert std is not None
    noisy = guard.noised(np.zeros(200_000, np.float32), clip_range=100.0)
    assert noisy.dtype == np.float32
    assert float(noisy.std()) == pytest.approx(std, rel=0.02)
    assert float(np.abs(guard.noised(np.zeros(1000, np.float32), clip_range=0.125)).max()) <= 0.125
