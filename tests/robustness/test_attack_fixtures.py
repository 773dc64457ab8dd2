"""The malicious-silo fixtures do what their names say: checked against the honest update they replace."""

from __future__ import annotations

import numpy as np
import pytest

from fedsilo.datasets import load_silo_data
from fedsilo.strategies import FitConfig
from fedsilo_testing.attacks import FACTORY, Attack, AttackingClient, AttackPlan, alie_z, flip_labels, make_client

from ..datasets.conftest import job_spec

SPEC = job_spec(silos=5, model={"factory": FACTORY}, data={"source": "digits"})
CONFIG = FitConfig(round=1, local_epochs=1, batch_size=32, learning_rate=0.05, seed=3)


def honest_and_sent(plan: AttackPlan) -> tuple[np.ndarray, np.ndarray]:
    """The attacker's honest update and the update it sends, flattened, from the same global model."""
    data = load_silo_data(SPEC, 4, 5)
    honest_spec = SPEC.model_copy(
        update={"model": SPEC.model.model_copy(update={"builtin": plan.model, "factory": None})}
    )
    client = AttackingClient(plan, SPEC, data, honest_spec)
    start = client.get_weights()
    client.set_weights(start)
    client.fit(CONFIG)
    sent = np.concatenate([(client.get_weights()[k] - start[k]).ravel() for k in start])
    honest = AttackingClient(AttackPlan(), SPEC, data, honest_spec)
    honest.set_weights(start)
    honest.fit(CONFIG)
    update = np.concatenate([(honest.get_weights()[k] - start[k]).ravel() for k in start])
    return update, sent


def test_sign_flip_sends_minus_scale_times_the_honest_update() -> None:
    update, sent = honest_and_sent(AttackPlan(attack=Attack.SIGN_FLIP, attackers=("silo-4",), scale=3.0))
    assert np.linalg.norm(update) > 0
    assert np.allclose(sent, -3.0 * update, atol=1e-5)


def test_scaled_boost_sends_scale_times_the_honest_update() -> None:
    update, sent = honest_and_sent(AttackPlan(attack=Attack.SCALED_BOOST, attackers=("silo-4",), scale=5.0))
    assert np.allclose(sent, 5.0 * update, atol=1e-5)


def test_gaussian_sends_noise_of_the_given_spread_unrelated_to_the_update() -> None:
    update, sent = honest_and_sent(AttackPlan(attack=Attack.GAUSSIAN, attackers=("silo-4",), sigma=2.0))
    assert abs(float(np.std(sent)) - 2.0) < 0.1
    assert abs(float(np.corrcoef(update, sent)[0, 1])) < 0.1


def test_alie_stays_within_z_standard_deviations_of_the_honest_mean() -> None:
    update, sent = honest_and_sent(AttackPlan(attack=Attack.ALIE, attackers=("silo-4",)))
    # Small per coordinate (hides among honest updates), yet not the attacker's own update.
    assert np.linalg.norm(sent) < 3 * np.linalg.norm(update)
    assert not np.allclose(sent, update)


def test_the_alie_z_of_five_silos_and_one_attacker_is_the_papers() -> None:
    # s = floor(5/2 + 1) - 1 = 2; z = Phi^-1(3/5)
    assert alie_z(5, 1) == pytest.approx(0.2533, abs=1e-4)


def test_label_flip_reverses_the_training_labels_only() -> None:
    data = load_silo_data(SPEC, 0, 5)
    flipped = flip_labels(data)
    assert (flipped.train_y == data.num_classes - 1 - data.train_y).all()
    assert (flipped.test_y == data.test_y).all()


def test_a_plan_naming_a_silo_the_job_lacks_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in AttackPlan(attack=Attack.SIGN_FLIP, attackers=("silo-9",)).to_env().items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=r"attackers \['silo-9'\]"):
        make_client(SPEC, load_silo_data(SPEC, 0, 5))


def test_an_honest_silo_under_a_plan_trains_honestly(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in AttackPlan(attack=Attack.SIGN_FLIP, attackers=("silo-4",)).to_env().items():
        monkeypatch.setenv(key, value)
    assert not isinstance(make_client(SPEC, load_silo_data(SPEC, 0, 5)), AttackingClient)
    assert isinstance(make_client(SPEC, load_silo_data(SPEC, 4, 5)), AttackingClient)
