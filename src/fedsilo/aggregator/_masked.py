"""Masked aggregation: the ``Aggregation`` interface over ``fedsilo.secagg.SecAggServer``.

The aggregator holds the running sum of masked uint32 payloads, added chunk by chunk as they
arrive (``_streamed.py``), and after unmasking the sum; never one silo's plaintext update
nor, beyond a chunk in flight, its masked one. The unmasked words are decoded slice by slice
(``FixedPointSum``): no float64 copy of the whole sum.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fedsilo.identity import VerifyKey
from fedsilo.secagg import SecAggConfig, SecAggServer, decode_mean, decoded_norm

from ._aggregation import Aggregation, RoundSum, UpdateSink
from ._streamed import StreamedInputs


class FixedPointSum(RoundSum):
    """The unmasked sum as the server holds it, uint32 fixed-point words, decoded a slice at a time when read."""

    def __init__(self, words: npt.NDArray[np.uint32], fractional_bits: int) -> None:
        super().__init__(words.size - 1, float(words[-1]))
        self._words = words
        self._fractional_bits = fractional_bits

    def norm(self) -> float:
        return decoded_norm(self._words, self._fractional_bits)

    def mean(self, divisor: float) -> npt.NDArray[np.float32]:
        return decode_mean(self._words, self._fractional_bits, divisor)


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

    def result(self) -> RoundSum:
        return FixedPointSum(self.server.unmasked_words(), self.server.config.fractional_bits)

    def coordinate_error(self) -> float:
        """Each counted silo's fixed point rounds each coordinate by at most half a unit."""
        return len(self.server.counted) * 0.5 * 2.0**-self.server.config.fractional_bits
