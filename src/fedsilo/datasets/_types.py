"""The data one silo holds: a training split and a held-out split, as numpy arrays.

Built by ``load_silo_data`` / ``load_pooled_data`` and handed to ``build_client`` and so
to every ``TrainerClient`` factory, built-in or the user's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class SiloData:
    """One silo's records (or, for the centralized baseline, every silo's records pooled).

    ``train_x`` and ``test_x`` hold records of ``input_shape`` (``(features,)`` for tables,
    ``(channels, height, width)`` for images); labels are ``0 .. num_classes - 1``.
    ``silo_index`` is the silo's position in the job's silo list, ``None`` when pooled;
    clients mix it into their seeds so silos do not shuffle in lockstep.
    """

    train_x: npt.NDArray[np.float32]
    train_y: npt.NDArray[np.int64]
    test_x: npt.NDArray[np.float32]
    test_y: npt.NDArray[np.int64]
    num_classes: int
    input_shape: tuple[int, ...]
    silo_index: int | None = None

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)):
            if len(x) != len(y):
                raise ValueError(f"{split}_x has {len(x)} records but {split}_y has {len(y)}")
            if tuple(x.shape[1:]) != self.input_shape:
                raise ValueError(
                    f"{split}_x records have shape {tuple(x.shape[1:])}, input_shape is {self.input_shape}"
                )
            if len(y) and not 0 <= int(y.min()) <= int(y.max()) < self.num_classes:
                raise ValueError(f"{split}_y has labels outside 0..{self.num_classes - 1}")

    @property
    def num_features(self) -> int:
        """Values per record."""
        return int(np.prod(self.input_shape))
