"""Each round's compression: the level the hub chooses, the shared subset it publishes.

``CompressionPlanner.plan`` fixes one ``RoundCompression`` when a round opens: the bits
(fixed by the job, or with ``spec.compression.adaptive`` the finest of its levels whose
upload fits the bytes budget and, from each silo's measured upload throughput, the target
time of the slowest silo: one level for all silos, as masking needs), the word width the
sum of the round's silos needs, the weight scale, and the subset's seed and window.
``observe`` takes the throughputs a closed round measured. A masked sign-vote job's rounds
are planned here too: their packing is fixed by the vote (``_votes.vote_settings``). The choice and its reason go
into the round's summary (report, status) and the policy input (the audit log).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from fedsilo.api import AggregationMode, FederatedJobSpec, PrivacyMode
from fedsilo.compression import (
    masked_payload_size,
    plain_payload_size,
    subset_schedule,
    subset_size,
    sum_word_bits,
    vote_settings,
)
from fedsilo.protocol import RoundCompression

from ._contracts import SiloRoundStats
from ._votes import vote_reason


@dataclass(frozen=True)
class CompressionChoice:
    """What one round compresses with, and why that level."""

    settings: RoundCompression
    # Bytes one silo sends up with these settings (the payload; metadata aside).
    payload_bytes: int
    reason: str


@dataclass
class CompressionPlanner:
    """Chooses every round's ``RoundCompression`` for one job."""

    spec: FederatedJobSpec
    model_length: int
    # Each silo's last measured upload throughput, bytes per second.
    throughput: dict[str, float] = field(default_factory=dict)

    def plan(self, round_number: int, participants: tuple[str, ...], records: Mapping[str, int]) -> CompressionChoice:
        """The round's settings: the level, its words, the weight scale, the subset's seed and window."""
        if self.spec.masked_vote:
            votes = vote_settings(len(participants), self.spec.aggregation.clip_range)
            return CompressionChoice(
                votes, masked_payload_size(votes, self.model_length), vote_reason(votes, self.model_length)
            )
        compression = self.spec.compression
        assert compression is not None, "a planner exists only for jobs with spec.compression or a masked vote"
        masked = self.spec.aggregation.mode is AggregationMode.MASKED
        silo_dp = self.spec.privacy.mode is PrivacyMode.SILO
        weight_scale = 1 if silo_dp or not masked else max([records.get(s, 1) for s in participants] or [1])
        subset = 0
        seed = offset = 0
        if compression.subset is not None:
            subset = subset_size(self.model_length, compression.subset)
            seed, offset = subset_schedule(self.spec.seed, round_number, self.model_length, subset)
        top_k = max(1, math.ceil(self.model_length * compression.top_k)) if compression.top_k is not None else 0

        def settings(bits: int) -> RoundCompression:
            return RoundCompression(
                bits=bits,
                word_bits=sum_word_bits(bits, len(participants)) if masked else bits,
                value_range=compression.value_range or self.spec.aggregation.clip_range,
                weight_scale=weight_scale,
                subset_seed=seed,
                subset_offset=offset,
                subset_size=subset,
                top_k=top_k,
            )

        size = masked_payload_size if masked else plain_payload_size
        adaptive = compression.adaptive
        if adaptive is None:
            fixed = settings(compression.bits or 0)
            return CompressionChoice(fixed, size(fixed, self.model_length), "fixed by spec.compression")
        slowest = min((self.throughput[s] for s in participants if s in self.throughput), default=None)
        for bits in adaptive.levels:
            candidate = settings(bits)
            payload = size(candidate, self.model_length)
            if adaptive.bytes_budget is not None and payload > adaptive.bytes_budget:
                continue
            target = adaptive.target_round_seconds
            if target is not None and slowest is not None and payload / slowest > target:
                continue
            return CompressionChoice(candidate, payload, _why(bits, payload, slowest, fits=True))
        coarsest = settings(adaptive.levels[-1])
        payload = size(coarsest, self.model_length)
        return CompressionChoice(coarsest, payload, _why(adaptive.levels[-1], payload, slowest, fits=False))

    def observe(self, stats: Mapping[str, SiloRoundStats]) -> None:
        """The upload throughputs a closed round measured (silos that sent nothing keep their last)."""
        for silo, numbers in stats.items():
            if numbers.upload_seconds and numbers.upload_bytes:
                self.throughput[silo] = numbers.upload_bytes / numbers.upload_seconds


def _why(bits: int, payload: int, slowest: float | None, *, fits: bool) -> str:
    measured = f"slowest upload {slowest / 1024:.0f} KiB/s" if slowest is not None else "no upload measured yet"
    verdict = "the finest level within the budget and target" if fits else "no level fits; the coarsest"
    return f"{bits} bits: {verdict} ({payload} bytes per silo, {measured})"
