"""Reference epsilons from Opacus (an independent implementation), a grid to compare on, and a fresh ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from dp_accounting.rdp.rdp_privacy_accountant import DEFAULT_RDP_ORDERS
from opacus.accountants import PRVAccountant, RDPAccountant

from fedsilo.privacy.ledger import PrivacyLedger


class Setting(NamedTuple):
    noise_multiplier: float
    sample_rate: float
    steps: int
    delta: float


# Abadi et al.'s MNIST setting (batch 256 of 60000 records, 60 epochs), then a spread of
# noise, sampling rate, length and delta up to epsilon ~20, plus plain Gaussian releases
# (sample rate 1, silo mode).
MNIST = Setting(1.1, 256 / 60000, 14063, 1e-5)
GRID = [
    MNIST,
    Setting(1.1, 256 / 60000, 100, 1e-5),
    Setting(0.8, 0.01, 1000, 1e-5),
    Setting(1.0, 0.02, 500, 1e-6),
    Setting(2.0, 0.1, 200, 1e-5),
    Setting(1.5, 0.004, 5000, 1e-6),
    Setting(0.7, 0.05, 100, 1e-5),
    Setting(4.0, 1.0, 50, 1e-5),
    Setting(10.0, 1.0, 200, 1e-6),
]


def opacus_rdp(setting: Setting) -> float:
    """Opacus' RDP epsilon at dp_accounting's orders (a superset of Opacus' own), so both optimize over the same set."""
    accountant = RDPAccountant()
    accountant.history = [(setting.noise_multiplier, setting.sample_rate, setting.steps)]
    epsilon, _ = accountant.get_privacy_spent(delta=setting.delta, alphas=list(DEFAULT_RDP_ORDERS))
    return float(epsilon)


def opacus_rdp_default_orders(setting: Setting) -> float:
    """What Opacus itself reports (its default orders)."""
    accountant = RDPAccountant()
    accountant.history = [(setting.noise_multiplier, setting.sample_rate, setting.steps)]
    return float(accountant.get_epsilon(setting.delta))


class PrvBounds(NamedTuple):
    lower: float
    estimate: float
    upper: float


def opacus_prv(setting: Setting, eps_error: float = 0.01) -> PrvBounds:
    """Opacus' PRV accountant (Gopi et al. 2021): lower bound, estimate and upper bound of epsilon.

    ``PRVAccountant.get_epsilon`` returns only the upper bound, which sits ``eps_error``
    (absolute) above the estimate; the estimate is what a tight accountant should match.
    """
    accountant = PRVAccountant()
    accountant.history = [(setting.noise_multiplier, setting.sample_rate, setting.steps)]
    delta_error = setting.delta / 1000
    discrete = accountant._get_dprv(eps_error=eps_error, delta_error=delta_error)
    lower, estimate, upper = discrete.compute_epsilon(setting.delta, delta_error, eps_error)
    return PrvBounds(float(lower), float(estimate), float(upper))


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[PrivacyLedger]:
    with PrivacyLedger(tmp_path / "ledger.db") as opened:
        yield opened
