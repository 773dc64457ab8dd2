"""DP-SGD through Opacus trains the shipped models (Linear, Conv2d) with Poisson sampling, clips
every record's gradient and adds noise, reports the sample rate the accountant charges, and
points a model with BatchNorm to the fix instead of training it wrongly."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedsilo.privacy.dpsgd import DpSgdTraining, make_dp_compatible, make_dp_sgd
from fedsilo.trainer import LogisticRegression, SmallCNN

BATCH = 64


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # As in the trainer: on a shared machine more threads only contend (seconds become minutes).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> TensorDataset:
    x, y = load_digits(return_X_y=True)
    return TensorDataset(torch.from_numpy((x / 8.0 - 1.0).astype(np.float32)), torch.from_numpy(y))


def _accuracy(model: nn.Module, data: TensorDataset) -> float:
    x, y = data.tensors
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _train(training: DpSgdTraining, epochs: int) -> int:
    steps = 0
    training.module.train()
    for _ in range(epochs):
        for x, y in training.data_loader:
            training.optimizer.zero_grad()
            torch.autograd.backward(nn.functional.cross_entropy(training.module(x), y))
            training.optimizer.step()
            steps += 1
    return steps


@pytest.mark.parametrize(
    "build", [lambda: LogisticRegression(64, 10), lambda: SmallCNN((64,), 10)], ids=["linear", "cnn"]
)
def test_a_shipped_model_learns_digits_under_dp_sgd(digits: TensorDataset, build: object) -> None:
    torch.manual_seed(0)
    model: nn.Module = build()  # type: ignore[operator]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    before = _accuracy(model, digits)
    with make_dp_sgd(model, optimizer, DataLoader(digits, batch_size=BATCH), 1.0, 1.0) as training:
        # Poisson sampling at one batch in len(loader) records: what the trainer reports.
        assert training.sample_rate == pytest.approx(1 / int(np.ceil(len(digits) / BATCH)))
        steps = _train(training, epochs=3)
    assert steps == 3 * len(training.data_loader)
    assert _accuracy(model, digits) > max(0.6, before + 0.4)


def test_the_same_model_is_wrapped_again_round_after_round(digits: TensorDataset) -> None:
    torch.manual_seed(0)
    model = LogisticRegression(64, 10)
    for _ in range(3):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        with make_dp_sgd(model, optimizer, DataLoader(digits, batch_size=BATCH), 1.0, 1.0) as training:
            _train(training, epochs=1)
        # Closed: the model is a plain module again, with no per-record state left behind.
        assert not model._forward_hooks
        assert not any(hasattr(p, "grad_sample") for p in model.parameters())
    assert _accuracy(model, digits) > 0.6


def test_every_record_gradient_is_clipped_and_noise_is_added(digits: TensorDataset) -> None:
    torch.manual_seed(0)
    model = LogisticRegression(64, 10)
    start = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    clip = 1e-3
    training = make_dp_sgd(model, optimizer, DataLoader(digits, batch_size=BATCH), 0.0, clip)
    x, y = next(iter(training.data_loader))
    optimizer.zero_grad()
    torch.autograd.backward(nn.functional.cross_entropy(training.module(x), y))
    # Opacus puts each record's gradient beside the parameter's, as grad_sample.
    per_record = torch.cat([p.grad_sample.flatten(1) for p in training.module.parameters()], dim=1)
    training.optimizer.step()
    # Without noise the step is the mean of clipped gradients: at most the clip norm (lr 1).
    moved = torch.cat([(p.detach() - s).flatten() for p, s in zip(training.module.parameters(), start, strict=True)])
    assert per_record.norm(dim=1).max() > 100 * clip
    assert moved.norm() <= clip * (1 + 1e-4) * len(x) / BATCH


def test_noise_follows_the_noise_multiplier(digits: TensorDataset) -> None:
    def step_norm(noise_multiplier: float) -> float:
        torch.manual_seed(1)
        model = LogisticRegression(64, 10)
        start = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        training = make_dp_sgd(
            model,
            torch.optim.SGD(model.parameters(), lr=1.0),
            DataLoader(digits, batch_size=BATCH),
            noise_multiplier,
            1.0,
        )
        x, y = next(iter(training.data_loader))
        torch.autograd.backward(nn.functional.cross_entropy(training.module(x), y))
        training.optimizer.step()
        return float((torch.cat([p.detach().flatten() for p in training.module.parameters()]) - start).norm())

    # 650 parameters, noise std sigma * C / batch each: the step is dominated by noise.
    assert step_norm(10.0) == pytest.approx(10.0 / BATCH * np.sqrt(650), rel=0.25)


class _ConvWithBatchNorm(nn.Module):
    """The common case: a convolution followed by BatchNorm2d, as in a ResNet block."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.reshape(-1, 1, 8, 8))  # type: ignore[no-any-return]


def test_batch_norm_is_refused_with_the_fix_named(digits: TensorDataset) -> None:
    model = _ConvWithBatchNorm()
    with pytest.raises(ValueError, match=r"BatchNorm.*make_dp_compatible"):
        make_dp_sgd(model, torch.optim.SGD(model.parameters(), lr=0.1), DataLoader(digits, batch_size=BATCH), 1.0, 1.0)


def test_the_fixed_model_trains(digits: TensorDataset) -> None:
    torch.manual_seed(0)
    model = make_dp_compatible(_ConvWithBatchNorm())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    training = make_dp_sgd(
        model, torch.optim.SGD(model.parameters(), lr=0.5), DataLoader(digits, batch_size=BATCH), 1.0, 1.0
    )
    _train(training, epochs=2)
    assert _accuracy(training.module, digits) > 0.5
