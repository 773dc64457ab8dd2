"""calibrate_noise returns the smallest noise multiplier, to its tolerance, that meets the target:
the mechanism it calibrates spends at most the target, and a little less noise spends more."""

from __future__ import annotations

import pytest

from fedsilo.api import PrivacyMode, PrivacySpec
from fedsilo.privacy import AccountantKind, DpSgdEvent, calibrate_noise, epsilon_for, resolve_noise_multiplier

TOLERANCE = 1e-3


@pytest.mark.parametrize(
    ("accountant", "target", "sample_rate", "steps"),
    [
        ("rdp", 1.0, 256 / 60000, 14063),
        ("rdp", 3.0, 0.01, 2000),
        ("rdp", 8.0, 0.05, 300),
        ("rdp", 1.0, 1.0, 20),
        ("pld", 1.0, 1.0, 20),
        ("pld", 1.0, 0.1, 100),
    ],
)
def test_the_calibrated_noise_meets_the_target_and_no_less_noise_does(
    accountant: AccountantKind, target: float, sample_rate: float, steps: int
) -> None:
    sigma = calibrate_noise(target, 1e-5, sample_rate, steps, accountant, tolerance=TOLERANCE)
    spent = epsilon_for([DpSgdEvent(sigma, sample_rate, steps)], 1e-5, accountant)
    assert spent <= target
    assert spent == pytest.approx(target, rel=0.01)
    less_noise = sigma / (1 + TOLERANCE)
    assert epsilon_for([DpSgdEvent(less_noise, sample_rate, steps)], 1e-5, accountant) > target


def test_a_smaller_target_needs_more_noise() -> None:
    sigmas = [calibrate_noise(target, 1e-5, 0.01, 1000) for target in (8.0, 4.0, 2.0, 1.0, 0.5)]
    assert sigmas == sorted(sigmas)


def test_a_huge_target_gets_the_floor_of_the_search_range() -> None:
    sigma = calibrate_noise(999.0, 1e-5, 0.01, 10)
    assert sigma == 0.3
    assert epsilon_for([DpSgdEvent(sigma, 0.01, 10)], 1e-5) <= 999.0


def test_an_unreachable_target_is_refused() -> None:
    with pytest.raises(ValueError, match="out of reach"):
        calibrate_noise(1e-4, 1e-10, 1.0, 100_000)


def test_the_job_runs_with_the_configured_noise_or_the_calibrated_one() -> None:
    configured = PrivacySpec(mode=PrivacyMode.RECORD, noise_multiplier=1.3)
    assert resolve_noise_multiplier(configured, 0.01, 1000) == 1.3
    targeted = PrivacySpec(mode=PrivacyMode.SILO, target_epsilon=2.0, delta=1e-6)
    assert resolve_noise_multiplier(targeted, 1.0, 30) == calibrate_noise(2.0, 1e-6, 1.0, 30)
