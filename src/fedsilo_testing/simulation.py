"""FedAvg simulated in one process, with a plain sample-weighted mean in place of secure aggregation.

For tests and benchmarks that compare federated with centralized accuracy many times
over (seeds, partitions, preprocessing choices) where a whole ``fedsilo run`` per point
would take minutes. The silos train exactly the clients a trainer builds, on exactly the
data ``load_silo_data`` gives them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from fedsilo.aggregator import CompressionPlanner
from fedsilo.api import AggregationMode, FederatedJobSpec, PrivacyMode
from fedsilo.compression import ErrorFeedback, masked_levels, masked_total, plain_payload, read_plain_payload
from fedsilo.datasets import FittedPreprocessing, load_silo_data
from fedsilo.privacy import plan_for_silo
from fedsilo.protocol import TensorLayout, Weights
from fedsilo.sidecar import prepare_update
from fedsilo.strategies import DpSgdConfig, make_strategy
from fedsilo.trainer import EvaluateConfig, build_client


@dataclass(frozen=True)
class SimulatedRun:
    """Held-out accuracy after every round (weighted by held-out records) and each silo's at the end."""

    accuracy: tuple[float, ...]
    silo_accuracy: tuple[float, ...]


def mean_update(global_weights: Weights, locals_: list[tuple[Weights, int]]) -> Weights:
    """The sample-weighted mean of ``local - global``: what secure aggregation hands a strategy."""
    total = sum(n for _, n in locals_)
    return {
        k: np.asarray(sum(n * (local[k] - v) for local, n in locals_) / total, dtype=np.float32)
        for k, v in global_weights.items()
    }


class Channel(Protocol):
    """How the silos' local models become the mean update a strategy receives."""

    def __call__(self, round_number: int, global_weights: Weights, locals_: list[tuple[Weights, int]]) -> Weights:
        """The round's mean update from ``(local model, records)`` per silo."""
        ...


@dataclass
class SidecarChannel:
    """The sidecar's clip and compress steps and the hub's decoding, without the network between them.

    What masking and signing add cancels or is checked elsewhere (tests/compression proves the
    masked sum of packed levels equals the plain sum exactly; tests/secagg that the masks
    cancel), so summing the levels mod 2^32 here is what the hub unmasks. Error feedback keeps
    every silo's residual, as each sidecar does for its accepted updates.
    """

    spec: FederatedJobSpec
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    _feedback: dict[int, ErrorFeedback] = field(default_factory=dict)
    _planner: CompressionPlanner | None = None

    @property
    def residuals(self) -> list[npt.NDArray[np.float64]]:
        """Each silo's error-feedback residual after the last round (none without error feedback)."""
        return [f.residual for f in self._feedback.values() if f.residual is not None]

    def __call__(self, round_number: int, global_weights: Weights, locals_: list[tuple[Weights, int]]) -> Weights:
        """Clip each silo's change, compress it if the job does, and decode the weighted mean."""
        layout = TensorLayout.of(global_weights)
        origin = layout.flatten(global_weights)
        policy, aggregation = self.spec.policy, self.spec.aggregation
        deltas = [
            prepare_update(origin, layout.flatten(local), policy.norm_cap, aggregation.clip_range).delta
            for local, _ in locals_
        ]
        records = [n for _, n in locals_]
        if self.spec.compression is None:
            total = sum(n * d.astype(np.float64) for d, n in zip(deltas, records, strict=True))
            return layout.unflatten(np.asarray(total / sum(records), dtype=np.float32))
        weighted = self._compressed_sum(round_number, layout.size, deltas, records)
        return layout.unflatten(np.asarray(weighted / sum(records), dtype=np.float32))

    def _compressed_sum(
        self, round_number: int, length: int, deltas: list[npt.NDArray[np.float32]], records: list[int]
    ) -> npt.NDArray[np.float64]:
        """``sum_i w_i x_i`` as the hub decodes it from the silos' compressed payloads."""
        compression = self.spec.compression
        assert compression is not None
        if self._planner is None:
            self._planner = CompressionPlanner(self.spec, length)
        silos = tuple(self.spec.silos)
        settings = self._planner.plan(round_number, silos, dict(zip(silos, records, strict=True))).settings
        masked = self.spec.aggregation.mode is AggregationMode.MASKED
        make = masked_levels if masked else plain_payload
        sent = []
        for index, (delta, weight) in enumerate(zip(deltas, records, strict=True)):
            feedback = self._feedback.setdefault(index, ErrorFeedback(compression.error_feedback_fraction))
            residual = feedback.residual if compression.error_feedback else None
            compressed = make(delta, residual, weight, settings, self.rng)
            if compression.error_feedback:
                feedback.commit(compressed.residual)
            sent.append(compressed.data)
        if masked:
            levels = np.sum(np.stack(sent).astype(np.uint64), axis=0) & np.uint64(0xFFFFFFFF)
            return masked_total(levels.astype(np.uint32), len(sent), settings, length)
        total = np.zeros(length, dtype=np.float64)
        for data in sent:
            update, sent_weight = read_plain_payload(np.asarray(data, dtype=np.uint8), settings, length)
            total += sent_weight * update
        return total


def simulate_fedavg(
    spec: FederatedJobSpec, preprocessing: FittedPreprocessing | None = None, channel: Channel | None = None
) -> SimulatedRun:
    """Run ``spec``'s rounds in this process; ``preprocessing`` is the job's fitted transform, if it has one.

    A job with ``privacy.mode: record`` trains every silo with DP-SGD at the noise the
    sidecar's planner (``plan_for_silo``) calibrates from the silo's own record count.
    ``channel`` carries the updates to the strategy: by default their exact weighted mean.
    """
    carry: Channel = channel or (lambda _round, model, locals_: mean_update(model, locals_))
    num_silos = len(spec.silos)
    data = [load_silo_data(spec, i, num_silos, None, preprocessing) for i in range(num_silos)]
    clients = [build_client(spec, d) for d in data]
    plans = [plan_for_silo(spec, len(d.train_y)) for d in data]
    if spec.privacy.mode is PrivacyMode.SILO:
        raise ValueError("the in-process simulation runs record-level DP only; silo mode needs the sidecar's noise")
    strategy = make_strategy(spec)
    model = clients[0].get_weights()
    accuracy = []
    silo_accuracy: list[float] = []
    for round_number in range(1, spec.rounds + 1):
        config = strategy.configure_round(round_number)
        locals_ = []
        for client, plan in zip(clients, plans, strict=True):
            client.set_weights(model)
            dp = plan.fit_dp() if plan is not None else None
            result = client.fit(config if dp is None else replace(config, dp=DpSgdConfig(**dp)))
            locals_.append((client.get_weights(), result.num_samples))
        model = strategy.aggregate(model, carry(round_number, model, locals_))
        scores = []
        for client in clients:
            client.set_weights(model)
            scores.append(client.evaluate(EvaluateConfig(round=round_number)))
        silo_accuracy = [s.accuracy for s in scores]
        accuracy.append(float(np.average(silo_accuracy, weights=[s.num_samples for s in scores])))
    return SimulatedRun(tuple(accuracy), tuple(silo_accuracy))
