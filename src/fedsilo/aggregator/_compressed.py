"""Compressed rounds on the hub: packed payloads in, the same ``Aggregation`` interface out.

Masked mode: each silo's packed ``word_bits``-bit masked levels are unpacked into the
running uint32 sum (``SecAggServer``) chunk by chunk as they arrive (``_streamed.py``), the sum is unmasked mod 2^32 and read mod
``2^word_bits``, which is exact because both the levels' sum and the masks live in that
ring; the hub then turns the sum of levels into ``sum_i w_i x_i`` on the round's subset,
with the total weight taken from the admitted updates' signed claims (a compressed masked
payload carries no weight word). Plain mode: each payload is decoded to
``[w * x..., w]``, so the plain checks and the robust rules work unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fedsilo.compression import (
    CompressionError,
    masked_payload_size,
    masked_total,
    plain_payload_size,
    read_plain_payload,
    words_sent,
)
from fedsilo.identity import VerifyKey
from fedsilo.policy import Reason, Refusal
from fedsilo.protocol import RoundCompression
from fedsilo.secagg import SecAggConfig

from ._aggregation import BufferedSink, FloatSum, PlainAggregation, RoundSum, UpdateSink
from ._masked import MaskedAggregation


class CompressedMaskedAggregation(MaskedAggregation):
    """Secure aggregation of one compressed round's packed levels."""

    def __init__(
        self,
        config: SecAggConfig,
        verify_keys: Mapping[str, VerifyKey],
        settings: RoundCompression,
        model_length: int,
        *,
        spill_dir: Path | None = None,
    ) -> None:
        if config.vector_length != words_sent(settings, model_length):
            raise ValueError("the secure-aggregation vector must be the round's words")
        super().__init__(config, verify_keys, spill_dir=spill_dir)
        self.settings = settings
        self.model_length = model_length
        self._weight = 0.0

    def open_update(self, silo: str) -> UpdateSink:
        return self._inputs.open(
            silo, masked_payload_size(self.settings, self.model_length), "uint8", self.settings.word_bits
        )

    def admit_weighted(self, silo: str, weight: int) -> None:
        self.admit(silo)
        self._weight += weight

    def result(self) -> RoundSum:
        counted = len(self.server.counted)
        return FloatSum(
            masked_total(self.server.unmasked_words(), counted, self.settings, self.model_length), self._weight
        )


class CompressedPlainAggregation(PlainAggregation):
    """Plain sums of one compressed round's payloads, each decoded to ``[w * x..., w]``."""

    def __init__(self, vector_length: int, settings: RoundCompression, *, keep_updates: bool = False) -> None:
        super().__init__(vector_length, keep_updates=keep_updates)
        self.settings = settings
        self._decoded: dict[str, npt.NDArray[np.float64]] = {}

    def open_update(self, silo: str) -> UpdateSink:
        sink = BufferedSink(plain_payload_size(self.settings, self.vector_length - 1), "uint8", check_finite=False)
        self._pending[silo] = sink
        return sink

    def cleartext(self, silo: str) -> npt.NDArray[np.generic] | None:
        decoded = self._decoded.get(silo)
        if decoded is None:
            data = self._pending[silo].vector.view(np.uint8)
            try:
                update, weight = read_plain_payload(data, self.settings, self.vector_length - 1)
            except CompressionError as error:
                raise Refusal(Reason.PAYLOAD_INVALID, str(error)) from None
            decoded = np.append(update * weight, weight)
            self._decoded[silo] = decoded
        return decoded

    def admit(self, silo: str) -> None:
        self.cleartext(silo)
        self._pending.pop(silo)
        self._count(silo, self._decoded.pop(silo))

    def exclude(self, silo: str, reason: str) -> None:
        self._decoded.pop(silo, None)
        super().exclude(silo, reason)
