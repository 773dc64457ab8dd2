"""The hub's undo log of masked chunks: what lets a silo's input leave the running sum again.

``SecAggServer`` adds each chunk into one running sum as it arrives, so its memory is one
model whatever the number of silos. A silo can still be taken back out until the survivor
set is fixed (it vanished mid-stream, its payload digest did not match, the policy denied
it): the chunks are also written here, to one unlinked temporary file on disk, each silo
in its own region, and read back chunk by chunk to subtract them. Everything in the file
is masked; it is deleted when the survivor set is fixed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ._config import SecAggConfig
from ._errors import SecAggError


class Spool:
    """Masked chunks by silo, in a sparse temporary file: silo with Shamir point x owns region x - 1."""

    def __init__(self, config: SecAggConfig, directory: Path | None) -> None:
        self._config = config
        self._region_bytes = 4 * config.masked_length
        self._file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - open until close()
        self._fd = self._file.fileno()

    def write(self, x: int, offset: int, words: npt.NDArray[np.uint32]) -> None:
        """Keep the chunk of silo ``x`` that starts at word ``offset``."""
        position = (x - 1) * self._region_bytes + 4 * offset
        written = os.pwrite(self._fd, words.data.cast("B"), position)
        if written != words.nbytes:
            raise SecAggError(f"the hub's spool took {written} of {words.nbytes} bytes (disk full?)")

    def read(self, x: int, end: int, scratch: npt.NDArray[np.uint32]) -> Iterator[tuple[int, npt.NDArray[np.uint32]]]:
        """The chunks of silo ``x`` below word ``end``, each as ``(offset, words)`` in ``scratch``."""
        for offset in range(0, end, self._config.chunk_elements):
            words = scratch[: min(self._config.chunk_elements, end - offset)]
            position = (x - 1) * self._region_bytes + 4 * offset
            if os.preadv(self._fd, [words.data.cast("B")], position) != words.nbytes:
                raise SecAggError("the hub's spool lost data it had written")
            yield offset, words

    def close(self) -> None:
        """Delete the file."""
        self._file.close()
