"""The centralized baseline trains the job's model on the pooled records for the job's epoch budget."""

from __future__ import annotations

from fedsilo.baseline import MAX_EPOCHS, train_centralized
from fedsilo.datasets import load_pooled_data

from ..datasets.conftest import job_spec


def test_an_mlp_on_pooled_digits_passes_ninety_percent() -> None:
    spec = job_spec(rounds=5, training={"localEpochs": 2, "momentum": 0.9})
    result = train_centralized(spec, 3)
    assert result.accuracy > 0.9
    assert result.epochs == 10
    assert len(result.accuracy_per_epoch) == len(result.loss_per_epoch) == 10
    assert result.accuracy == result.accuracy_per_epoch[-1]
    assert result.loss_per_epoch[-1] < result.loss_per_epoch[0]


def test_the_epoch_budget_is_capped() -> None:
    spec = job_spec(rounds=100, model={"builtin": "logistic_regression"}, data={"source": "breast_cancer"})
    assert train_centralized(spec, 3).epochs == MAX_EPOCHS


def test_the_baseline_scores_on_every_silos_held_out_records() -> None:
    spec = job_spec(rounds=1, model={"builtin": "logistic_regression"}, data={"source": "breast_cancer"})
    pooled = load_pooled_data(spec, 3)
    assert len(pooled.train_y) + len(pooled.test_y) == 569
    assert train_centralized(spec, 3).accuracy > 0.9
