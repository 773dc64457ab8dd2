"""Defenses against attacking silos, simulated in one process: what a whole run's hub would compute, fast.

The robustness tests and ``benchmarks/bench_robustness.py`` need hundreds of runs (defense
x attack x attackers x seeds); a whole ``fedsilo run`` takes a minute or more, so this
module runs the silos in one process on exactly the records ``load_silo_data`` gives them,
training the built-in logistic regression (or its numpy twin, ``numpy_logistic``, for
hundreds of runs), the attackers poisoning with the fixtures' own functions
(``poison``, ``alie_update``, ``flip_labels``), and the hub's side of each defense with the
shipped code:

- ``fedavg``, ``median``, ``trimmed_mean``, ``multikrum``, ``centered_clipping``: the
  strategies (``make_strategy``), FedAvg over the sample-weighted mean, the robust rules
  over every update, as the coordinator calls them in plain mode;
- ``anomaly_score``: FedAvg, with the hub's per-silo scores (``AnomalyScores`` over the
  ``distance`` and ``l2_norm`` signals) and the policy's limit: a silo whose score is above
  ``ANOMALY_LIMIT`` before a round is denied in it;
- ``masked_norm_bound``: FedAvg under masking, where the bound on a liar is the policy's
  cap on the signed norm (``NORM_CAP``): an honest silo above it is denied, and an attacker
  running a modified sidecar scales its update down to the cap and signs that norm, the
  most ``_bounds`` lets through (docs/robustness.md);
- ``masked_sign_vote``: each silo's ``vote_levels`` masked with masks that cancel mod 2^32
  (what pairwise masks are once every silo is counted; the exact equality with real
  secure aggregation is tests/robustness/test_masked_sign_vote.py), packed at
  ``vote_word_bits`` on the wire, summed, range-checked by ``vote_tally`` and stepped by
  ``SignVote``.

Not simulated: mTLS, the policy engine, the sidecar's clipping (attackers here model a
modified sidecar, as the whole-run tests raise the norm cap and clip range out of the way).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fedsilo.aggregator import AnomalyScores
from fedsilo.api import FederatedJobSpec
from fedsilo.compression import pack_votes, unpack_votes, vote_levels, vote_tally
from fedsilo.datasets import SiloData, load_silo_data
from fedsilo.protocol import TensorLayout, Weights
from fedsilo.strategies import FedAvg, RobustStrategy, SignVote, make_strategy
from fedsilo.trainer import EvaluateConfig, TrainerClient, build_client

from .attack_runs import attack_document
from .attacks import Attack, AttackPlan, alie_update, flip_labels, poison
from .numpy_logistic import NumpyLogistic

#: The defenses of the table, each a strategy (and, for some, a check) as ``DEFENSES`` configures it.
DEFENSES: Final[dict[str, dict[str, Any]]] = {
    "fedavg": {"name": "fedavg"},
    "median": {"name": "median"},
    "trimmed_mean": {"name": "trimmed_mean", "trimFraction": 0.3},
    "multikrum": {"name": "multikrum"},
    "centered_clipping": {"name": "centered_clipping", "clippingRadius": 0.5, "clippingIterations": 3},
    "masked_norm_bound": {"name": "fedavg"},
    "masked_sign_vote": {"name": "sign_vote", "signStepSize": 0.02},
    "anomaly_score": {"name": "fedavg"},
}
#: The policy's limit on a silo's anomaly score (docs/robustness.md suggests 5).
ANOMALY_LIMIT: Final = 5.0
#: The policy's norm cap in the masked-norm-bound defense: above every honest update's norm in these jobs.
NORM_CAP: Final = 2.5

Vector = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Scenario:
    """One simulated job: a defense, an attack by the first ``attackers`` silos, a seed."""

    defense: str
    attack: Attack = Attack.NONE
    attackers: int = 0
    seed: int = 0
    silos: int = 10
    rounds: int = 10
    alpha: float | None = 0.5
    # The numpy twin of the built-in logistic regression (fast; the benchmark's), or the torch model.
    numpy_model: bool = False

    def __post_init__(self) -> None:
        """Refuse what the table has no cell for, naming the field."""
        if self.defense not in DEFENSES:
            raise ValueError(f"defense {self.defense!r} is not one of {sorted(DEFENSES)}")
        if not 0 <= self.attackers < self.silos:
            raise ValueError(f"attackers must be in 0..{self.silos - 1}, not {self.attackers}")
        if (self.attack is Attack.NONE) != (self.attackers == 0):
            raise ValueError("attack none needs attackers 0, and an attack needs at least one attacker")

    def spec(self) -> FederatedJobSpec:
        """The job: ``attack_document``'s digits job with this defense's strategy."""
        strategy = dict(DEFENSES[self.defense])
        if self.defense == "multikrum":
            strategy["byzantineSilos"] = max(self.attackers, 1)
        document = attack_document(strategy, silos=self.silos, rounds=self.rounds, seed=self.seed, alpha=self.alpha)
        return FederatedJobSpec.model_validate(document["spec"])


@dataclass
class SimulatedRound:
    """What one round did: the silos denied in it, the hub's seconds, the cosines, the bytes sent."""

    denied: tuple[str, ...] = ()
    server_seconds: float = 0.0
    # Per admitted silo: cosine between its update and the step taken (plain defenses only).
    cosine: dict[str, float] = field(default_factory=dict)
    # Bytes one silo sent (masked defenses: the packed masked words; plain: float32 words).
    bytes_per_silo: int = 0


@dataclass(frozen=True)
class SimulatedRun:
    """Every round of one scenario, and the held-out accuracy after the last (weighted by held-out records)."""

    scenario: Scenario
    rounds: tuple[SimulatedRound, ...]
    final_accuracy: float


def simulate(scenario: Scenario) -> SimulatedRun:
    """Run ``scenario`` in this process; deterministic for a given scenario."""
    spec = scenario.spec()
    names = list(spec.silos)
    attackers = tuple(names[: scenario.attackers])
    plan = AttackPlan(attack=scenario.attack, attackers=attackers)
    clients = [_client(scenario, spec, plan, name, _silo_data(spec, i)) for i, name in enumerate(names)]
    defense = _Defense(scenario.defense, spec, attackers, scenario.seed)
    model = clients[0].get_weights()
    layout = TensorLayout.of(model)
    rounds = []
    for round_number in range(1, spec.rounds + 1):
        config = defense.strategy.configure_round(round_number)
        updates: dict[str, Vector] = {}
        counts: dict[str, int] = {}
        for name, client in zip(names, clients, strict=True):
            client.set_weights(model)
            result = client.fit(config)
            updates[name] = layout.flatten(client.get_weights()).astype(np.float64) - layout.flatten(model)
            counts[name] = result.num_samples
        updates |= _poisoned(plan, updates, spec.seed, round_number, names)
        started = time.perf_counter()
        model, record = defense.step(model, layout, updates, counts)
        record.server_seconds = time.perf_counter() - started
        rounds.append(record)
    return SimulatedRun(scenario, tuple(rounds), _accuracy(clients, model, spec.rounds))


#: Silos' records by (data section, seed, silo count, index): every defense of a seed trains on one split.
_PARTITIONS: dict[tuple[str, int, int, int], SiloData] = {}


def _silo_data(spec: FederatedJobSpec, index: int) -> SiloData:
    """Silo ``index``'s records, loaded once per split (what the split depends on is the key)."""
    key = (spec.data.model_dump_json(), spec.seed, len(spec.silos), index)
    if key not in _PARTITIONS:
        _PARTITIONS[key] = load_silo_data(spec, index, len(spec.silos))
    return _PARTITIONS[key]


def _client(scenario: Scenario, spec: FederatedJobSpec, plan: AttackPlan, name: str, data: SiloData) -> TrainerClient:
    """The silo's honest trainer (numpy or the built-in torch model), on flipped labels if it flips them."""
    if plan.attack is Attack.LABEL_FLIP and name in plan.attackers:
        data = flip_labels(data)
    return NumpyLogistic(data) if scenario.numpy_model else build_client(spec, data)


def _poisoned(
    plan: AttackPlan, honest: dict[str, Vector], seed: int, round_number: int, names: list[str]
) -> dict[str, Vector]:
    """What the attackers send instead of their honest updates (the fixtures' ``poison`` and ``alie_update``).

    ALIE's colluding view is every silo's honest update, which this process already has.
    """
    if plan.attack is Attack.ALIE:
        sent = alie_update(list(honest.values()), plan, len(names))
        return dict.fromkeys(plan.attackers, sent)
    return {
        silo: poison(plan, {"u": honest[silo]}, (seed, round_number, names.index(silo)))["u"] for silo in plan.attackers
    }


def _accuracy(clients: Sequence[TrainerClient], model: Weights, round_number: int) -> float:
    scores = []
    for client in clients:
        client.set_weights(model)
        scores.append(client.evaluate(EvaluateConfig(round=round_number)))
    return float(np.average([s.accuracy for s in scores], weights=[s.num_samples for s in scores]))


class _Defense:
    """The hub's side of one defense, round after round (it keeps the anomaly scores and the strategy)."""

    def __init__(self, name: str, spec: FederatedJobSpec, attackers: tuple[str, ...], seed: int) -> None:
        self.name = name
        self.strategy = make_strategy(spec)
        self._attackers = attackers
        self._scores = AnomalyScores()
        self._rng = np.random.default_rng([seed, 18])

    def step(
        self, model: Weights, layout: TensorLayout, updates: dict[str, Vector], counts: dict[str, int]
    ) -> tuple[Weights, SimulatedRound]:
        """The next model from this round's updates, and what the round did (its seconds filled in by the caller)."""
        record = SimulatedRound(bytes_per_silo=4 * layout.size)
        if self.name == "masked_sign_vote":
            return self._vote(model, updates, record)
        if self.name == "masked_norm_bound":
            updates = self._capped(updates, record)
        if self.name == "anomaly_score":
            record.denied = tuple(
                s for s in updates if (score := self._scores.score(s)) is not None and score > ANOMALY_LIMIT
            )
            updates = {s: u for s, u in updates.items() if s not in record.denied}
        new = self._combine(model, layout, updates, counts)
        step = layout.flatten(new).astype(np.float64) - layout.flatten(model)
        record.cosine = {s: _cosine(u, step) for s, u in updates.items()}
        if self.name == "anomaly_score":
            self._scores.observe(
                {
                    "distance": {s: float(np.linalg.norm(u - step)) for s, u in updates.items()},
                    "l2_norm": {s: float(np.linalg.norm(u)) for s, u in updates.items()},
                }
            )
        return new, record

    def _combine(
        self, model: Weights, layout: TensorLayout, updates: dict[str, Vector], counts: dict[str, int]
    ) -> Weights:
        if isinstance(self.strategy, RobustStrategy):
            return self.strategy.aggregate_updates(model, [layout.unflatten(u) for u in updates.values()])
        assert isinstance(self.strategy, FedAvg)
        total = sum(counts[s] for s in updates)
        mean = sum(counts[s] * u for s, u in updates.items()) / total
        return self.strategy.aggregate(model, layout.unflatten(np.asarray(mean)))

    def _capped(self, updates: dict[str, Vector], record: SimulatedRound) -> dict[str, Vector]:
        """The policy's norm cap: honest silos above it are denied, attackers shrink to it and sign that."""
        kept: dict[str, Vector] = {}
        for silo, update in updates.items():
            norm = float(np.linalg.norm(update))
            if silo in self._attackers:
                kept[silo] = update * min(1.0, NORM_CAP / norm) if norm > 0 else update
            elif norm <= NORM_CAP:
                kept[silo] = update
        record.denied = tuple(s for s in updates if s not in kept)
        return kept

    def _vote(
        self, model: Weights, updates: dict[str, Vector], record: SimulatedRound
    ) -> tuple[Weights, SimulatedRound]:
        """Every silo's vote levels masked, packed, summed mod 2^32, range-checked and tallied."""
        assert isinstance(self.strategy, SignVote)
        voters = len(updates)
        count = next(iter(updates.values())).size
        masks = _cancelling_masks(voters, count, self._rng)
        total = np.zeros(count, dtype=np.uint32)
        for update, mask in zip(updates.values(), masks, strict=True):
            wire = pack_votes(vote_levels(update) + mask, voters)
            record.bytes_per_silo = int(wire.size)
            total += unpack_votes(wire, voters, count)
        return self.strategy.aggregate_tally(model, vote_tally(total, voters)), record


def _cancelling_masks(silos: int, count: int, rng: np.random.Generator) -> list[npt.NDArray[np.uint32]]:
    """Masks in Z_2^32 that sum to zero: what pairwise masks are once every silo is counted."""
    masks = [rng.integers(0, 2**32, count, dtype=np.uint64).astype(np.uint32) for _ in range(silos - 1)]
    last = np.zeros(count, dtype=np.uint32)
    for mask in masks:
        last -= mask
    return [*masks, last]


def _cosine(a: Vector, b: Vector) -> float:
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / denominator if denominator > 0 else 0.0
