"""The built-in models take the records their data has and give one logit per class."""

from __future__ import annotations

import pytest
import torch

from fedsilo.api import BuiltinModel, ModelSpec
from fedsilo.trainer import MLP, SmallCNN, build_model


@pytest.mark.parametrize("builtin", list(BuiltinModel))
@pytest.mark.parametrize("input_shape", [(1, 8, 8), (64,), (3, 6, 6)])
def test_every_builtin_model_gives_a_logit_per_class(builtin: BuiltinModel, input_shape: tuple[int, ...]) -> None:
    model = build_model(ModelSpec(builtin=builtin), input_shape, 7)
    assert model(torch.zeros(5, *input_shape)).shape == (5, 7)


def test_the_mlp_has_the_hidden_layers_asked_for() -> None:
    model = build_model(ModelSpec(builtin=BuiltinModel.MLP, hidden_sizes=[20, 10]), (30,), 2)
    assert isinstance(model, MLP)
    widths = [p.shape for name, p in model.named_parameters() if name.endswith("weight")]
    assert widths == [(20, 30), (10, 20), (2, 10)]


def test_the_cnn_reads_flat_square_records_as_one_channel_images() -> None:
    model = build_model(ModelSpec(builtin=BuiltinModel.CNN), (64,), 10)
    assert isinstance(model, SmallCNN)
    assert model.image_shape == (1, 8, 8)


def test_the_cnn_refuses_records_that_are_not_images() -> None:
    with pytest.raises(ValueError, match=r"the cnn model needs image-shaped records, got shape \(30,\)"):
        build_model(ModelSpec(builtin=BuiltinModel.CNN), (30,), 2)
