"""Masked aggregation: the ``Aggregation`` interface over ``fedsilo.secagg.SecAggServer``.

The aggregator holds masked uint32 payloads and, after unmasking, the sum; never one
silo's plaintext update.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from fedsilo.identity import VerifyKey
from fedsilo.secagg import SecAggConfig, SecAggServer

from ._aggregation import Aggregation, BufferedSink, UpdateSink


class MaskedAggregation(Aggregation):
    """One round of secure aggregation."""

    setup_steps = ("advertise", "share")

    def __init__(self, config: SecAggConfig, verify_keys: Mapping[str, VerifyKey]) -> None:
        super().__init__(config.vector_length)
        self.server = SecAggServer(config, verify_keys)
        self._pending: dict[str, BufferedSink] = {}

    def setup_step(self, step: str, posted: Mapping[str, bytes]) -> dict[str, bytes]:
        if step == "advertise":
            return self.server.advertise(posted)
        if step == "share":
            return self.server.share_keys(posted)
        return super().setup_step(step, posted)

    def open_update(self, silo: str) -> UpdateSink:
        sink = BufferedSink(self.vector_length, "uint32", check_finite=False)
        self._pending[silo] = sink
        return sink

    def admit(self, silo: str) -> None:
        sink = self._pending.pop(silo)
        self.server.add_input(silo, sink.vector.view(np.uint32))

    def exclude(self, silo: str, reason: str) -> None:
        self._pending.pop(silo, None)
        self.server.exclude(silo, reason)

    def unmask_request(self, survivors: frozenset[str]) -> bytes:
        return self.server.unmask_request()

    def unmask(self, posted: Mapping[str, bytes]) -> None:
        self.server.unmask(posted)

    def result(self) -> tuple[npt.NDArray[np.float64], float]:
        total, weight = self.server.result()
        return total, float(weight)

    def coordinate_error(self) -> float:
        """Each counted silo's fixed point rounds each coordinate by at most half a unit."""
        return len(self.server.counted) * 0.5 * 2.0**-self.server.config.fractional_bits
