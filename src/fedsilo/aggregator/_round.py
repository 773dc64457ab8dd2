"""The state of the round that is open: its plan, steps, inputs and what each silo did.

The coordinator opens one ``OpenRound`` at a time and owns the condition variable that
guards it; admission and evaluation handlers read and post into it under that lock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Final

from fedsilo.api import AggregationMode, FederatedJob, FederatedJobSpec
from fedsilo.compression import words_sent
from fedsilo.he import HEParameters, round_seed
from fedsilo.identity import VerifyKey
from fedsilo.protocol import MAX_RECORDS, EvaluationReport, PolicyVerdict, RoundPlan
from fedsilo.secagg import SecAggConfig, choose_graph

from ._aggregation import Aggregation, PlainAggregation
from ._bounds import SignedContribution
from ._compressed import CompressedMaskedAggregation, CompressedPlainAggregation
from ._contracts import JobFailed, SiloRoundStats
from ._homomorphic import HomomorphicAggregation, HomomorphicJob
from ._masked import MaskedAggregation
from ._phases import Phase, PhaseClosed
from ._quality import SignedEvaluation
from ._votes import VoteAggregation

# Masked mode: the fewest fractional bits the job's fixed point keeps. A silo's record count
# is bounded at Join so that no silo can push the hub's precision below this.
MIN_FRACTIONAL_BITS: Final = 8


@dataclass
class OpenRound:
    """One round from its opening to its record."""

    plan: RoundPlan
    aggregation: Aggregation | None
    steps: dict[str, Phase[bytes]]
    inputs: Phase[PolicyVerdict]
    unmask: Phase[bytes] | None
    # Each silo's record count as it stood when the round opened: fixed for the round, so a
    # Join sent mid-round changes neither the fixed-point range nor what the updates may claim.
    records: Mapping[str, int] = field(default_factory=dict)
    evaluations: dict[str, EvaluationReport] = field(default_factory=dict)
    # The signed bytes behind ``evaluations`` (kept for the lineage), and the closing
    # evaluation's scores of each silo's fine-tuned model.
    claims: dict[str, SignedEvaluation] = field(default_factory=dict)
    personalized: dict[str, EvaluationReport] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    denied: dict[str, tuple[str, ...]] = field(default_factory=dict)
    stats: dict[str, SiloRoundStats] = field(default_factory=dict)
    replies: dict[str, dict[str, bytes]] = field(default_factory=dict)
    unmask_body: bytes = b""
    # Why the hub chose this round's compression level (empty when uncompressed).
    compression_reason: str = ""
    # The masked round's neighbour graph as recorded (``GraphChoice.record``); None in other modes.
    graph: Mapping[str, Any] | None = None
    started: float = field(default_factory=time.monotonic)
    # What each admitted silo signed about its update: the bound on the round's sum (``_bounds``).
    signed: dict[str, SignedContribution] = field(default_factory=dict)
    # Why the round's sum was not applied (it broke that bound); None for a round that counted.
    void: str | None = None
    # Silos that left during the round (a signed Leave), with the reason each gave.
    left: dict[str, str] = field(default_factory=dict)

    def release_setup_messages(self) -> None:
        """Drop the setup steps' messages once the input step has closed (no silo can use them then).

        Each silo's share bundle holds a ciphertext for every peer: kept to the round's end they
        grew the hub's memory with the square of the number of silos.
        """
        for phase in self.steps.values():
            phase.posted = dict.fromkeys(phase.posted, b"")
        self.replies = {step: {} for step in self.replies}

    def leave(self, silo: str, reason: str) -> None:
        """``silo`` left: no step of this round, open now or later, waits for it or takes its messages."""
        self.left[silo] = reason
        for phase in (*self.steps.values(), self.inputs, *((self.unmask,) if self.unmask is not None else ())):
            phase.left.add(silo)

    def contribution_of(self, silo: str) -> SignedContribution:
        """What admitted ``silo`` signed (set when its update took effect)."""
        return self.signed[silo]

    def stats_of(self, silo: str) -> SiloRoundStats:
        """``silo``'s counters in this round, created on first use."""
        return self.stats.setdefault(silo, SiloRoundStats())

    def require(self, silo: str, round_number: int) -> None:
        """Raise ``PhaseClosed`` unless this is round ``round_number`` and ``silo`` takes part."""
        if self.plan.round != round_number:
            raise PhaseClosed(f"round {round_number} is not open")
        if silo not in self.plan.participants:
            raise PhaseClosed(f"{silo} is not a participant of round {round_number}")


def fit_config_document(config: Any) -> dict[str, Any]:
    """The strategy's round configuration as the JSON object the plan carries."""
    if is_dataclass(config) and not isinstance(config, type):
        return asdict(config)
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"strategy returned {type(config).__name__}, expected a dataclass or mapping")


def max_records(spec: FederatedJobSpec) -> int:
    """The most records one silo may declare at Join.

    In masked mode the fixed-point range must hold the sum of every silo's weighted update:
    each silo gets an equal share of it at ``MIN_FRACTIONAL_BITS``, so the job (its clip
    range and silo count) decides the precision, not a silo declaring 2**27 records.
    """
    if spec.aggregation.mode is AggregationMode.HOMOMORPHIC:
        # Each silo's weighted coordinates (at most clipRange x records) share the CKKS sum's range.
        share = HEParameters().max_sum_magnitude() / (spec.aggregation.clip_range * len(spec.silos))
        return max(1, min(MAX_RECORDS, math.floor(share)))
    if spec.aggregation.mode is not AggregationMode.MASKED:
        return MAX_RECORDS
    share = (2**31 - 1) / (spec.aggregation.clip_range * 2**MIN_FRACTIONAL_BITS * len(spec.silos))
    return max(1, min(MAX_RECORDS, math.floor(share)))


def round_aggregation(
    job: FederatedJob,
    plan: RoundPlan,
    keys: Mapping[str, VerifyKey],
    homomorphic: HomomorphicJob | None = None,
    spill_dir: Path | None = None,
) -> Aggregation:
    """The aggregation of a training round: secure aggregation or multiparty CKKS among the participants, or plain sums.

    ``spill_dir``: where masked uploads keep their chunks until their verdict (``MaskedAggregation``).
    """
    spec = job.spec
    if spec.aggregation.mode is AggregationMode.HOMOMORPHIC:
        assert homomorphic is not None, "a homomorphic job's coordinator keeps a HomomorphicJob"
        seed = round_seed(job.metadata.name, plan.round, plan.model_digest)
        participants = {s: keys[s] for s in plan.participants}
        return HomomorphicAggregation(homomorphic, plan.round, plan.vector_length, seed, participants)
    settings = plan.compression
    if spec.aggregation.mode is not AggregationMode.MASKED:
        # Only a robust rule combines the individual updates; every other keeps a running sum.
        keep = spec.strategy.name.robust
        if settings is not None:
            return CompressedPlainAggregation(plan.vector_length, settings, keep_updates=keep)
        return PlainAggregation(plan.vector_length, keep_updates=keep)
    model_length = plan.vector_length - 1
    config = SecAggConfig(
        job=job.metadata.name,
        round=plan.round,
        silos=tuple(spec.silos),
        threshold=plan.threshold,
        # A compressed round masks the levels of its subset only, with no weight word.
        vector_length=plan.vector_length if settings is None else words_sent(settings, model_length),
        fractional_bits=plan.fractional_bits,
        clip_range=spec.aggregation.clip_range,
        degree=choose_graph(spec).degree,
    )
    keys_of = {s: keys[s] for s in plan.participants}
    if settings is not None:
        # A sign vote's levels are summed like compressed ones and read back as the tally.
        kind = VoteAggregation if spec.masked_vote else CompressedMaskedAggregation
        return kind(config, keys_of, settings, model_length, spill_dir=spill_dir)
    return MaskedAggregation(config, keys_of, spill_dir=spill_dir)


def require_quorum(spec: FederatedJobSpec, alive: int, round_number: int, where: str) -> None:
    """Raise ``JobFailed`` when fewer silos than the quorum and the secure-aggregation threshold are left."""
    threshold = spec.secagg_threshold()
    if alive < max(threshold, spec.min_silos):
        raise JobFailed(
            f"round {round_number}: quorum lost after {where}: {alive} silos left; minSilos is "
            f"{spec.min_silos} and the secure-aggregation threshold is {threshold}"
        )
