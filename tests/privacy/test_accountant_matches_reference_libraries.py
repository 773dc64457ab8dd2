"""The accountant's epsilon agrees with Opacus' independent accountants within 0.5% over a grid:
RDP with Opacus' RDP, PLD (tight) with Opacus' PRV estimate, inside the PRV's error bounds."""

from __future__ import annotations

import dp_accounting
import pytest
from dp_accounting import pld, rdp

from fedsilo.privacy import AccountantKind, DpSgdEvent, GaussianEvent, Mechanism, epsilon_for

from .conftest import GRID, MNIST, Setting, opacus_prv, opacus_rdp, opacus_rdp_default_orders

TOLERANCE = 0.005

pytestmark = [
    # Opacus' PRV takes log(1 - q), -inf at q = 1, and masks it; its domain bound runs RDP
    # and warns when the best order is its largest. Neither touches the figures compared.
    pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha:UserWarning"),
]


def _event(setting: Setting) -> DpSgdEvent:
    return DpSgdEvent(setting.noise_multiplier, setting.sample_rate, setting.steps)


@pytest.mark.parametrize("setting", GRID, ids=str)
def test_rdp_epsilon_matches_opacus_rdp(setting: Setting) -> None:
    ours = epsilon_for([_event(setting)], setting.delta, "rdp")
    assert ours == pytest.approx(opacus_rdp(setting), rel=TOLERANCE)


@pytest.mark.parametrize("setting", GRID, ids=str)
def test_pld_epsilon_matches_the_opacus_prv_estimate_within_its_bounds_and_beats_rdp(setting: Setting) -> None:
    ours = epsilon_for([_event(setting)], setting.delta, "pld")
    prv = opacus_prv(setting)
    assert ours == pytest.approx(prv.estimate, rel=TOLERANCE)
    assert prv.lower <= ours <= prv.upper
    assert ours < epsilon_for([_event(setting)], setting.delta, "rdp")


def test_the_mnist_setting_gives_the_published_figures() -> None:
    # Abadi et al. 2016, sigma 1.1, q 256/60000, 60 epochs, delta 1e-5: the moments
    # accountant's RDP bound is ~2.6; tight accounting (PLD/PRV) ~2.38.
    assert epsilon_for([_event(MNIST)], MNIST.delta, "rdp") == pytest.approx(2.597, abs=1e-3)
    assert opacus_rdp_default_orders(MNIST) == pytest.approx(2.597, abs=1e-3)
    assert epsilon_for([_event(MNIST)], MNIST.delta, "pld") == pytest.approx(2.382, abs=2e-3)


def test_a_gaussian_release_is_a_dp_sgd_step_that_samples_everyone() -> None:
    assert epsilon_for([GaussianEvent(3.0, 40)], 1e-5) == epsilon_for([DpSgdEvent(3.0, 1.0, 40)], 1e-5)


@pytest.mark.parametrize(
    ("accountant", "history"),
    [
        ("rdp", [GaussianEvent(2.0, 1), DpSgdEvent(1.1, 0.01, 100), GaussianEvent(2.0, 2), DpSgdEvent(1.1, 0.01, 100)]),
        # PLDs of subsampled steps take a second each to build: plain releases keep this quick.
        ("pld", [GaussianEvent(2.0, 1), GaussianEvent(3.0, 1), GaussianEvent(2.0, 2), GaussianEvent(2.0, 1)]),
    ],
)
def test_grouping_equal_mechanisms_gives_what_composing_one_by_one_gives(
    accountant: AccountantKind, history: list[Mechanism]
) -> None:
    reference = {"rdp": rdp.RdpAccountant, "pld": pld.PLDAccountant}[accountant]()
    for event in history:
        gaussian = dp_accounting.GaussianDpEvent(event.noise_multiplier)
        if isinstance(event, DpSgdEvent):
            step = dp_accounting.PoissonSampledDpEvent(event.sample_rate, gaussian)
            reference.compose(dp_accounting.SelfComposedDpEvent(step, event.steps))
        else:
            reference.compose(dp_accounting.SelfComposedDpEvent(gaussian, event.count))
    assert epsilon_for(history, 1e-5, accountant) == pytest.approx(reference.get_epsilon(1e-5), rel=1e-3)


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_composition_is_tighter_than_adding_epsilons(accountant: AccountantKind) -> None:
    rounds = [DpSgdEvent(1.0, 0.02, 50)] * 20
    composed = epsilon_for(rounds, 1e-5, accountant)
    added = len(rounds) * epsilon_for(rounds[:1], 1e-5, accountant)
    assert composed < added / 3


def test_no_event_spends_nothing() -> None:
    assert epsilon_for([], 1e-5) == 0.0


@pytest.mark.parametrize("delta", [0.0, 1.0, -1e-5, float("nan")])
def test_a_delta_outside_zero_one_is_refused(delta: float) -> None:
    with pytest.raises(ValueError, match="delta"):
        epsilon_for([GaussianEvent(1.0, 1)], delta)


def test_an_unknown_accountant_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown accountant"):
        epsilon_for([GaussianEvent(1.0, 1)], 1e-5, "prv")  # type: ignore[arg-type]
