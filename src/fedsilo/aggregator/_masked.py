"""Masked aggregation: the ``Aggregation`` interface over ``fedsilo.secagg.SecAggServer``.

The aggregator holds the running sum of masked uint32 payloads, added chunk by chunk as they
arrive (``_streamed.py``), and after unmasking the sum; never one silo's plaintext update
nor, beyond a chunk in flight, its masked one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fedsilo.identity import VerifyKey
from fedsilo.secagg import SecAggConfig, SecAggServer

from ._aggregation import Aggregation, UpdateSink
from ._streamed import StreamedInputs


class MaskedAggregation(Aggregation):
    """One round of secure aggregation.

    ``spill_dir`` is where an upload's chunks are kept until its verdict, to take them back out
    of the sum if it is refused (the hub's state directory; None: the system's temporary one).
    """

    setup_steps = ("advertise", "share")

    def __init__(
        self, config: SecAggConfig, verify_keys: Mapping[str, VerifyKey], *, spill_dir: Path | None = None
    ) -> None:
        super().__init__(config.vector_length)
        self.server = SecAggServer(config, verify_keys)
        self._inputs = StreamedInputs(self.server, spill_dir)

    def setup_step(self, step: str, posted: Mapping[str, bytes]) -> dict[str, bytes]:
        if step == "advertise":
            return self.server.advertise(posted)
        if step == "share":
            return self.server.share_keys(posted)
        return super().setup_step(step, posted)

    def open_update(self, silo: str) -> UpdateSink:
        return self._inputs.open(silo, self.vector_length, "uint32", 32)

    def admit(self, silo: str) -> None:
        self._inputs.count(silo)

    def exclude(self, silo: str, reason: str) -> None:
        self._inputs.withdraw(silo)
        self.server.exclude(silo, reason)

    def unmask_request(self, survivors: frozenset[str]) -> bytes:
        self._inputs.require_whole()
        return self.server.unmask_request()

    def unmask(self, posted: Mapping[str, bytes]) -> None:
        self.server.unmask(posted)

    def result(self) -> tuple[npt.NDArray[np.float64], float]:
        total, weight = self.server.result()
        return total, float(weight)

    def coordinate_error(self) -> float:
        """Each counted silo's fixed point rounds each coordinate by at most half a unit."""
        return len(self.server.counted) * 0.5 * 2.0**-self.server.config.fractional_bits
