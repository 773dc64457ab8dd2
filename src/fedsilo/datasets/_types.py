"""The data one silo holds: a training split and a held-out split, as numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class SiloData:
    """One silo's records. ``input_shape`` is the per-record shape models are built for."""

    train_x: npt.NDArray[np.float32]
    train_y: npt.NDArray[np.int64]
    test_x: npt.NDArray[np.float32]
    test_y: npt.NDArray[np.int64]
    num_classes: int
    input_shape: tuple[int, ...]

    @property
    def num_features(self) -> int:
        """Values per record."""
        return int(np.prod(self.input_shape))
