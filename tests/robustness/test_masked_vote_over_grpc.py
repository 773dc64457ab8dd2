"""The masked sign vote with a real hub (coordinator, mTLS gRPC, embedded Rego, audit log) and
real sidecars whose trainers answer at once: each round's global step equals the plain vote's
exactly for the same updates, a silo that writes out-of-range levels voids its round, and a
silo that drops after the key exchange leaves a round that still counts the others' votes.

One run of three rounds carries all three: round 1 has a tampering silo, round 2 is honest,
round 3 loses a silo after it shared its keys (its masks are recovered from the survivors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from fedsilo.api import FederatedJob
from fedsilo.compression import packed_size, vote_word_bits
from fedsilo.identity import SiloIdentity
from fedsilo.protocol import PolicyVerdict, TensorLayout, Weights, rpc
from fedsilo.sidecar import Sidecar, SidecarConfig, TrainerLinkService
from fedsilo.sidecar._compress import Compress
from fedsilo.sidecar._pipeline import Next, OutgoingUpdate, Step
from fedsilo.sidecar._sending import Send
from fedsilo.strategies import make_strategy
from fedsilo_testing.loopback_job import LoopbackRun, MakeSidecar, SiloVanished, run_loopback_job

SILOS = ("silo-0", "silo-1", "silo-2", "silo-3")
RECORDS = {silo: 50 * (i + 1) for i, silo in enumerate(SILOS)}
WEIGHTS: Weights = {"w": np.zeros((20, 30), np.float32), "b": np.zeros(30, np.float32)}
LENGTH = TensorLayout.of(WEIGHTS).size
STEP = 0.05
TAMPER_ROUND, DROP_ROUND = 1, 3
LIAR, DROPPER = "silo-3", "silo-2"


def _delta(silo: str, round_number: int) -> np.ndarray:
    """Each silo's update in each round; silo-0 and silo-1 vote alike on the first coordinates, so some tie."""
    rng = np.random.default_rng(100 * round_number + SILOS.index(silo))
    delta = rng.uniform(-1, 1, LENGTH).astype(np.float32)
    delta[:5] = [1, 1, -1, -1, 0.5] if silo in SILOS[:2] else [-1, -1, 1, 1, -0.5]
    return delta


@dataclass(frozen=True)
class OutOfRangeLevels:
    """A modified sidecar's step after the vote encoding: level 7 (no honest vote) on every coordinate."""

    round_number: int

    def __call__(self, update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
        if update.plan.round == self.round_number:
            assert update.compressed is not None
            update.compressed = np.full_like(update.compressed, 7)
        return call_next(update)


@dataclass(frozen=True)
class DropAfterKeys:
    """The silo vanishes after the key exchange, before its masked vote leaves (no unmask, no rejoin)."""

    round_number: int

    def __call__(self, update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
        if update.plan.round == self.round_number:
            raise SiloVanished(f"round {self.round_number}")
        return call_next(update)


class ModifiedSidecar(Sidecar):
    """A real sidecar with one extra step: after the vote encoding, or just before the send."""

    def __init__(self, config: SidecarConfig, identity: SiloIdentity, link: TrainerLinkService, extra: Step) -> None:
        super().__init__(config, identity, link)
        self._extra = extra

    def steps(self, stub: rpc.AggregatorStub) -> list[Step]:
        steps = super().steps(stub)
        anchor = Compress if isinstance(self._extra, OutOfRangeLevels) else Send
        at = next(i for i, step in enumerate(steps) if isinstance(step, anchor))
        return [*steps[: at + (anchor is Compress)], self._extra, *steps[at + (anchor is Compress) :]]


def _job(name: str, mode: str, rounds: int) -> FederatedJob:
    return FederatedJob.model_validate(
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "FederatedJob",
            "metadata": {"name": name},
            "spec": {
                "silos": list(SILOS),
                "minSilos": 3,
                "rounds": rounds,
                # The dropped silo costs the last round this long; generous for a loaded machine.
                "roundTimeoutSeconds": 20,
                "model": {"builtin": "mlp"},
                "strategy": {"name": "sign_vote", "signStepSize": STEP},
                "aggregation": {"mode": mode, "clipRange": 1.0},
                "policy": {"normCap": 1e6, "dataClass": "internal"},
            },
        }
    )


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory: pytest.TempPathFactory) -> LoopbackRun:
    def modified(extra: Step) -> MakeSidecar:
        return lambda config, identity, link: ModifiedSidecar(config, identity, link, extra)

    job = _job("vote", "masked", rounds=3)
    folder = tmp_path_factory.mktemp("masked-vote")
    liars = {LIAR: modified(OutOfRangeLevels(TAMPER_ROUND)), DROPPER: modified(DropAfterKeys(DROP_ROUND))}
    return run_loopback_job(job, WEIGHTS, RECORDS, _delta, folder, liars)


def _plain_vote(before: np.ndarray, voters: tuple[str, ...], round_number: int) -> np.ndarray:
    """The plain vote's next model for the same updates: ``SignVote.aggregate_updates`` over them in the clear."""
    strategy = make_strategy(_job("plain", "plain", rounds=1).spec)
    layout = TensorLayout.of(WEIGHTS)
    # What each sidecar computes: the trainer's float32 model minus the global one.
    start = before.astype(np.float32)
    updates = [layout.unflatten((start + _delta(silo, round_number)) - start) for silo in voters]
    return layout.flatten(strategy.aggregate_updates(layout.unflatten(before), updates))


@pytest.mark.integration
def test_an_out_of_range_level_voids_the_round_and_the_model_stays(masked_run: LoopbackRun) -> None:
    first = masked_run.summaries[0]
    assert sorted(first.accepted) == sorted(SILOS), "the policy cannot see the masked levels: it admits them"
    assert first.void is not None and "the most 4 honest voters can send" in first.void
    np.testing.assert_array_equal(masked_run.models[1], masked_run.models[0])


@pytest.mark.integration
def test_an_honest_masked_round_steps_exactly_as_the_plain_vote(masked_run: LoopbackRun) -> None:
    second = masked_run.summaries[1]
    assert second.void is None and sorted(second.accepted) == sorted(SILOS)
    expected = _plain_vote(masked_run.models[1], SILOS, 2)
    np.testing.assert_array_equal(masked_run.models[2], expected)
    step = masked_run.models[2] - masked_run.models[1]
    np.testing.assert_allclose(np.abs(step[step != 0]), STEP, rtol=1e-5)
    assert np.all(step[:4] == 0) and step[4] == 0, "two votes against two: a tie moves nothing"


@pytest.mark.integration
def test_a_silo_dropping_after_the_key_exchange_leaves_the_others_vote(masked_run: LoopbackRun) -> None:
    third = masked_run.summaries[2]
    survivors = tuple(s for s in SILOS if s != DROPPER)
    assert third.void is None and sorted(third.accepted) == sorted(survivors)
    assert DROPPER in third.dropped
    expected = _plain_vote(masked_run.models[2], survivors, 3)
    np.testing.assert_array_equal(masked_run.models[3], expected)
    # silo-2's -1 is gone: on the first coordinates two +1 votes beat one -1.
    assert masked_run.models[3][0] - masked_run.models[2][0] == pytest.approx(STEP)


@pytest.mark.integration
def test_the_votes_go_as_packed_words_sized_for_the_tally(masked_run: LoopbackRun) -> None:
    second = masked_run.summaries[1]
    assert second.compression is not None and second.compression.bits == 2
    assert second.compression.word_bits == vote_word_bits(len(SILOS)) == 4
    assert "sign votes" in second.compression_reason
    sent = {silo: stats.upload_bytes for silo, stats in second.silos.items()}
    assert sent == dict.fromkeys(SILOS, packed_size(LENGTH, 4))
    assert packed_size(LENGTH, 4) * 8 < 4 * (LENGTH + 1), "8x fewer bytes than the float32 words a fedavg round sends"
