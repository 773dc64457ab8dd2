"""Plain mode keeps one running sum: updates are freed once added, their distances come from sketches."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from fedsilo.aggregator import update_distances
from fedsilo.aggregator._aggregation import PlainAggregation
from fedsilo.aggregator._sketches import SKETCH_WIDTH, UpdateSketches
from fedsilo.protocol import StreamError


def _admit(aggregation: PlainAggregation, silo: str, payload: np.ndarray) -> None:
    sink = aggregation.open_update(silo)
    sink.add(0, "float32", payload.astype(np.float32))
    sink.finish()
    aggregation.admit(silo)


def _payload(update: np.ndarray, weight: float) -> np.ndarray:
    return np.append(update * weight, weight)


def test_fedavg_keeps_no_update_and_the_sum_is_exact() -> None:
    rng = np.random.default_rng(0)
    aggregation = PlainAggregation(101)
    updates = {f"s{i}": rng.normal(size=100).astype(np.float32) for i in range(5)}
    for silo, update in updates.items():
        _admit(aggregation, silo, _payload(update, 2.0))
    total = aggregation.result()
    assert aggregation.admitted_updates() is None
    assert total.weight == 10.0
    expected = sum(2.0 * u.astype(np.float64) for u in updates.values())
    np.testing.assert_allclose(total.mean(10.0), expected / 10.0, rtol=1e-6)
    assert total.norm() == pytest.approx(float(np.linalg.norm(expected)), rel=1e-6)


def test_a_robust_rule_keeps_every_update() -> None:
    aggregation = PlainAggregation(4, keep_updates=True)
    _admit(aggregation, "a", _payload(np.array([1.0, 2.0, 3.0]), 1.0))
    kept = aggregation.admitted_updates()
    assert kept is not None and set(kept) == {"a"}


def test_an_admitted_update_cannot_be_excluded_afterwards() -> None:
    aggregation = PlainAggregation(3)
    _admit(aggregation, "a", _payload(np.array([1.0, 2.0]), 1.0))
    with pytest.raises(RuntimeError, match="already admitted"):
        aggregation.exclude("a", "late")


def test_a_small_models_distances_are_exact() -> None:
    rng = np.random.default_rng(1)
    update, step = rng.normal(size=SKETCH_WIDTH), rng.normal(size=SKETCH_WIDTH)
    sketches = UpdateSketches(SKETCH_WIDTH)
    sketches.add("a", update)
    distance, cosine = sketches.distances(step)["a"]
    exact_distance, exact_cosine = update_distances(update, step)
    assert distance == pytest.approx(exact_distance, rel=1e-9)
    assert cosine == pytest.approx(exact_cosine, rel=1e-9)


def test_a_large_models_distances_are_estimated_within_a_few_percent_and_keep_the_sign() -> None:
    rng = np.random.default_rng(2)
    step = rng.normal(size=300_001)
    honest = step + rng.normal(scale=0.5, size=step.size)
    flipped = -3.0 * honest
    sketches = UpdateSketches(step.size)
    sketches.add("honest", honest)
    sketches.add("flipped", flipped, 1.0)
    estimated = sketches.distances(step)
    for silo, update in (("honest", honest), ("flipped", flipped)):
        exact_distance, exact_cosine = update_distances(update, step)
        distance, cosine = estimated[silo]
        assert distance == pytest.approx(exact_distance, rel=0.1)
        assert cosine is not None and exact_cosine is not None
        assert cosine == pytest.approx(exact_cosine, abs=0.1)
    assert estimated["flipped"][1] < 0 < estimated["honest"][1]  # type: ignore[operator]


def test_a_sketch_refuses_a_vector_of_another_length() -> None:
    with pytest.raises(ValueError, match="has 10 values"):
        UpdateSketches(10).sketch(np.zeros(11))


def test_the_result_is_the_sum_itself_and_its_mean_is_the_old_float32_mean_bit_for_bit() -> None:
    rng = np.random.default_rng(4)
    length = 200_001
    aggregation = PlainAggregation(length + 1)
    for silo in ("a", "b", "c"):
        _admit(aggregation, silo, _payload(rng.normal(size=length).astype(np.float32), 3.0))
    tracemalloc.start()
    try:
        total = aggregation.result()
        handed_over = tracemalloc.get_traced_memory()[1]
        norm = total.norm()
    finally:
        tracemalloc.stop()
    # Before, result() copied the float64 sum: 1.6 MB here, 763 MiB at 100M parameters.
    assert handed_over < 10_000
    whole = aggregation._sum[:-1].copy()  # what the coordinator divided in place and rounded before
    assert norm == float(np.linalg.norm(whole))
    whole /= 9.0
    np.testing.assert_array_equal(total.mean(9.0).view(np.uint32), whole.astype(np.float32).view(np.uint32))


def test_the_step_sketched_from_two_models_tensors_is_the_step_sketched_whole() -> None:
    rng = np.random.default_rng(5)
    # Tensors that end inside a block, span blocks (524,288 values each), and an empty one.
    shapes = [(100_000,), (600, 1_000), (3,), (0,), (400, 1_000)]
    new = [rng.normal(size=shape).astype(np.float32) for shape in shapes]
    old = [rng.normal(size=shape).astype(np.float32) for shape in shapes]
    flat_new, flat_old = (np.concatenate([t.reshape(-1) for t in model]) for model in (new, old))
    sketches = UpdateSketches(flat_new.size)
    sketches.add("a", rng.normal(size=flat_new.size))
    # What the coordinator measured before: the float64 step of the two flattened models.
    step = flat_new.astype(np.float64) - flat_old
    np.testing.assert_array_equal(sketches.sketch(new, old), sketches.sketch(step))
    np.testing.assert_array_equal(sketches.sketch(new), sketches.sketch(flat_new))
    assert sketches.distances(new, old) == sketches.distances(step)


def test_a_sketch_refuses_tensors_of_another_total_length() -> None:
    with pytest.raises(ValueError, match="has 10 values, not 11"):
        UpdateSketches(10).sketch([np.zeros(5), np.zeros(6)])


@pytest.mark.parametrize("where", [0, 70_000, 4_000_000 - 1])
def test_a_finished_plain_payload_is_checked_for_finite_values_slice_by_slice(where: int) -> None:
    sink = PlainAggregation(4_000_000).open_update("a")
    payload = np.ones(4_000_000, dtype=np.float32)
    sink.add(0, "float32", payload[:1])  # one small chunk, then the rest as the stream would bring it
    for start in range(1, payload.size, 262_144):
        sink.add(start, "float32", payload[start : start + 262_144])
    tracemalloc.start()
    try:
        sink.finish()
        checked = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Before, the check made a boolean array of the whole payload: 4 MB here.
    assert checked < 400_000
    bad = PlainAggregation(4_000_000).open_update("b")
    payload[where] = np.nan
    for start in range(0, payload.size, 262_144):
        bad.add(start, "float32", payload[start : start + 262_144])
    with pytest.raises(StreamError, match="NaN or infinite"):
        bad.finish()
