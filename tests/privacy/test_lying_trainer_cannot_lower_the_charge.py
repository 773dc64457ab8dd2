"""The sidecar charges a DP-SGD round conservatively: whatever a trainer reports, the charged
epsilon is never below what the configured mechanism costs on the silo's declared records,
and a clipping norm above the configured one is refused."""

from __future__ import annotations

import itertools
import math

import pytest

from fedsilo.privacy import (
    DpSgdEvent,
    DpSgdPlan,
    PrivacyViolation,
    ReportedDpParams,
    charge_for_round,
    epsilon_for,
)

PLAN = DpSgdPlan(noise_multiplier=1.0, max_grad_norm=1.0, batch_size=64, local_epochs=2, records=6000)
# What the plan costs: Poisson sampling at batch/records for the epochs' worth of steps.
CONFIGURED = DpSgdEvent(1.0, 64 / 6000, math.ceil(2 * 6000 / 64))


def honest() -> ReportedDpParams:
    return ReportedDpParams(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=64 / 6000, steps=188, num_samples=6000)


def test_an_honest_report_is_charged_as_the_configured_mechanism() -> None:
    assert charge_for_round(honest(), PLAN) == CONFIGURED


def test_a_trainer_that_claims_more_noise_fewer_steps_and_more_records_is_charged_the_configured_cost() -> None:
    lie = ReportedDpParams(noise_multiplier=5.0, max_grad_norm=1.0, sample_rate=64 / 60000, steps=1, num_samples=60000)
    charged = charge_for_round(lie, PLAN)
    assert charged == CONFIGURED
    assert epsilon_for([charged], 1e-5) >= epsilon_for([CONFIGURED], 1e-5)
    # What the lie would have cost had it been believed: a fraction of the real price.
    assert epsilon_for([DpSgdEvent(5.0, 64 / 60000, 1)], 1e-5) < epsilon_for([CONFIGURED], 1e-5) / 50


@pytest.mark.parametrize(
    ("noise_multiplier", "sample_rate", "steps", "num_samples"),
    list(itertools.product([0.5, 1.0, 3.0], [0.001, 64 / 6000, 0.05], [1, 188, 400], [3000, 6000, 100000])),
)
def test_no_report_is_charged_less_than_the_configured_mechanism_costs(
    noise_multiplier: float, sample_rate: float, steps: int, num_samples: int
) -> None:
    report = ReportedDpParams(noise_multiplier, 1.0, sample_rate, steps, num_samples)
    charged = charge_for_round(report, PLAN)
    assert charged.noise_multiplier <= CONFIGURED.noise_multiplier
    assert charged.sample_rate >= CONFIGURED.sample_rate
    # A higher sample rate may come with fewer steps (the same epochs), never a lower epsilon.
    assert charged.steps * charged.sample_rate >= PLAN.local_epochs
    assert epsilon_for([charged], 1e-5) >= epsilon_for([CONFIGURED], 1e-5)


def test_less_noise_than_configured_is_charged_as_reported() -> None:
    report = ReportedDpParams(0.6, 1.0, 64 / 6000, 188, 6000)
    assert charge_for_round(report, PLAN).noise_multiplier == 0.6


def test_a_silo_smaller_than_one_batch_is_charged_a_sample_rate_of_one() -> None:
    small = DpSgdPlan(noise_multiplier=1.0, max_grad_norm=1.0, batch_size=64, local_epochs=3, records=40)
    report = ReportedDpParams(1.0, 1.0, 1.0, 3, 40)
    assert charge_for_round(report, small) == DpSgdEvent(1.0, 1.0, 3)


def test_steps_follow_exact_arithmetic_not_float_rounding() -> None:
    # 3 epochs over 1000 records in batches of 100 is 30 steps, though 3 / 0.1 is 30.000000000000004.
    plan = DpSgdPlan(noise_multiplier=1.0, max_grad_norm=1.0, batch_size=100, local_epochs=3, records=1000)
    assert charge_for_round(ReportedDpParams(1.0, 1.0, 0.1, 30, 1000), plan).steps == 30


def test_a_clipping_norm_above_the_configured_one_is_refused() -> None:
    report = ReportedDpParams(1.0, 1.5, 64 / 6000, 188, 6000)
    with pytest.raises(PrivacyViolation, match="clipping_norm_exceeds_configured") as refused:
        charge_for_round(report, PLAN)
    assert refused.value.reason.startswith("clipping_norm_exceeds_configured:")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("noise_multiplier", 0.0),
        ("noise_multiplier", float("nan")),
        ("max_grad_norm", float("inf")),
        ("sample_rate", 0.0),
        ("sample_rate", 1.5),
        ("steps", 0),
        ("num_samples", -5),
    ],
)
def test_a_report_outside_the_mechanism_is_refused(field: str, value: float) -> None:
    report = ReportedDpParams(**({**honest().__dict__, field: value}))
    with pytest.raises(PrivacyViolation, match="dp_report_invalid"):
        charge_for_round(report, PLAN)


def test_a_fit_report_without_dp_fields_is_refused() -> None:
    with pytest.raises(PrivacyViolation, match="dp_report_incomplete: noise_multiplier is None"):
        ReportedDpParams.from_fit_report({"num_samples": 6000, "steps": 188, "batch_size": 64})
    with pytest.raises(PrivacyViolation, match=r"dp_report_incomplete: steps is 188\.0"):
        ReportedDpParams.from_fit_report(
            {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "sample_rate": 0.01, "steps": 188.0, "num_samples": 6000}
        )


def test_a_fit_report_reads_into_the_reported_parameters() -> None:
    report = {**honest().__dict__, "train_loss": 0.3, "batch_size": 64, "metrics": {}}
    assert ReportedDpParams.from_fit_report(report) == honest()
