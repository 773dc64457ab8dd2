"""The built-in models: logistic regression, a multi-layer perceptron, and a small CNN.

``build_client`` builds them from ``spec.model``. Plain ``torch.nn`` modules, by default
without normalization, so the same models also work under record-level DP-SGD (per-sample
gradients) and every tensor is a parameter. ``spec.model.normalization`` adds batch or layer
normalization after each hidden layer of the mlp and cnn (what FedBN keeps in each silo;
batch normalization's running statistics are buffers, and the job refuses it with DP-SGD).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fedsilo.api import BuiltinModel, ModelSpec, Normalization


def _norm(kind: Normalization, width: int, *, image: bool = False) -> list[nn.Module]:
    """The normalization layer after a hidden layer of ``width`` units (channels for images), if any."""
    if kind is Normalization.BATCH:
        return [nn.BatchNorm2d(width) if image else nn.BatchNorm1d(width)]
    if kind is Normalization.LAYER:
        # Over the channels of each pixel for images: GroupNorm with one group is LayerNorm over (C, H, W).
        return [nn.GroupNorm(1, width) if image else nn.LayerNorm(width)]
    return []


class LogisticRegression(nn.Module):
    """Multinomial logistic regression."""

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))  # type: ignore[no-any-return]


class MLP(nn.Module):
    """Fully connected layers with ReLU."""

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        hidden_sizes: list[int],
        normalization: Normalization = Normalization.NONE,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = num_features
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), *_norm(normalization, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))  # type: ignore[no-any-return]


class SmallCNN(nn.Module):
    """Two 3x3 convolutions, a 2x2 max-pooling and two dense layers, for small images.

    ``input_shape`` is ``(channels, height, width)``, or flat records whose length is a
    square number, read as one-channel square images (an 8x8 digit is 64 values).
    """

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, normalization: Normalization = Normalization.NONE
    ) -> None:
        super().__init__()
        if len(input_shape) == 3:
            channels, height, width = input_shape
            if min(height, width) < 2:
                raise ValueError(f"the cnn model needs images of at least 2x2, got shape {input_shape}")
        else:
            side = math.isqrt(int(math.prod(input_shape)))
            if side < 2 or side * side != math.prod(input_shape):
                raise ValueError(f"the cnn model needs image-shaped records, got shape {input_shape}")
            channels, height, width = 1, side, side
        self.image_shape = (channels, height, width)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            *_norm(normalization, 16, image=True),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            *_norm(normalization, 32, image=True),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Linear(32 * (height // 2) * (width // 2), 64), nn.ReLU(), nn.Linear(64, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], *self.image_shape)
        return self.head(self.features(x).flatten(1))  # type: ignore[no-any-return]


def build_model(spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The built-in model ``spec.builtin`` for records of ``input_shape``."""
    features = int(math.prod(input_shape))
    if spec.builtin is BuiltinModel.LOGISTIC_REGRESSION:
        return LogisticRegression(features, num_classes)
    if spec.builtin is BuiltinModel.MLP:
        return MLP(features, num_classes, list(spec.hidden_sizes), spec.normalization)
    if spec.builtin is BuiltinModel.CNN:
        return SmallCNN(input_shape, num_classes, spec.normalization)
    raise ValueError(f"spec.model.builtin {spec.builtin!r} is not a built-in model")
