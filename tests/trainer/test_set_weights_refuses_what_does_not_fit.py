"""``set_weights`` checks every tensor before loading any, and names the one that does not fit."""

from __future__ import annotations

import numpy as np
import pytest

from fedsilo.trainer import TorchClassifierClient

from .conftest import distance


def test_the_weights_set_are_the_weights_got(client: TorchClassifierClient) -> None:
    new = {k: np.full_like(v, 0.25) for k, v in client.get_weights().items()}
    client.set_weights(new)
    got = client.get_weights()
    assert list(got) == list(new)
    assert distance(got, new) == 0.0
    assert all(v.dtype == np.float32 for v in got.values())


def test_got_weights_are_copies(client: TorchClassifierClient) -> None:
    got = client.get_weights()
    name = next(iter(got))
    got[name][...] = 99.0
    assert not np.any(client.get_weights()[name] == 99.0)


def test_float64_weights_of_the_right_shape_are_accepted(client: TorchClassifierClient) -> None:
    client.set_weights({k: v.astype(np.float64) for k, v in client.get_weights().items()})


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", r"tensor 'layers\.0\.bias' is missing"),
        ("extra", r"tensor 'head\.weight' is not part of the model"),
        ("shape", r"tensor 'layers\.0\.bias' has shape \(3,\), expected \(64,\)"),
        ("nan", r"tensor 'layers\.0\.bias' holds NaN or infinite values"),
        ("inf", r"tensor 'layers\.0\.bias' holds NaN or infinite values"),
        ("text", r"tensor 'layers\.0\.bias' has dtype <U1, expected float32"),
    ],
)
def test_a_tensor_that_does_not_fit_is_named_and_nothing_is_loaded(
    client: TorchClassifierClient, damage: str, message: str
) -> None:
    before = client.get_weights()
    weights = {k: np.zeros_like(v) for k, v in before.items()}
    name = "layers.0.bias"
    if damage == "missing":
        del weights[name]
    elif damage == "extra":
        weights["head.weight"] = np.zeros(3, np.float32)
    elif damage == "shape":
        weights[name] = np.zeros(3, np.float32)
    elif damage == "text":
        weights[name] = np.array(["x"] * 64)
    else:
        weights[name][5] = np.nan if damage == "nan" else np.inf
    with pytest.raises(ValueError, match=message):
        client.set_weights(weights)
    assert distance(client.get_weights(), before) == 0.0
