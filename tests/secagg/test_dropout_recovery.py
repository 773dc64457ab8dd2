"""The unmasked sum equals, bit for bit in Z_2^32, the sum of the counted silos' encoded inputs,
whoever drops out (or is denied) at whichever step, as long as t silos remain; below t the
round aborts and says where."""

from __future__ import annotations

import numpy as np
import pytest

from fedsilo.secagg import Dropout, DropPoint, SecAggAbort, ShareDelivery, run_local_round

from .conftest import expected_sum, make_config, random_inputs, silo_names

# Silos that leave at these points never had their input counted.
_UNCOUNTED = {DropPoint.BEFORE_ADVERTISE, DropPoint.AFTER_ADVERTISE, DropPoint.AFTER_SHARE_KEYS, DropPoint.MID_STREAM}


@pytest.mark.parametrize("trial", range(100))
def test_the_sum_is_exact_whoever_drops_out_at_whichever_step(trial: int) -> None:
    rng = np.random.default_rng(trial)
    n = int(rng.integers(3, 9))
    threshold = int(rng.integers(2, n + 1))
    length = int(rng.integers(1, 200))
    config = make_config(n, threshold, length, chunk=int(rng.choice([4, 16, 64])))
    inputs = random_inputs(config, rng)
    chunks = len(config.chunk_offsets())
    leaving = rng.choice(config.silos, size=int(rng.integers(0, n - threshold + 1)), replace=False)
    dropouts, denied = {}, {}
    for silo in leaving:
        where = int(rng.integers(0, len(DropPoint) + 1))
        if where == len(DropPoint):
            denied[silo] = "denied by policy"
        else:
            point = list(DropPoint)[where]
            sent = int(rng.integers(0, chunks)) if point is DropPoint.MID_STREAM else 0
            dropouts[silo] = Dropout(point, sent)

    outcome = run_local_round(config, inputs, dropouts=dropouts, denied=denied)

    counted = set(config.silos) - set(denied) - {s for s, d in dropouts.items() if d.at in _UNCOUNTED}
    assert outcome.refusals == {}
    assert outcome.result.survivors == counted
    assert set(outcome.result.dropped) == set(config.silos) - counted
    np.testing.assert_array_equal(outcome.result.encoded_sum, expected_sum(config, inputs, counted))
    assert outcome.result.total_weight == sum(inputs[s][1] for s in counted)
    clipped = sum(np.clip(inputs[s][0], -config.clip_range, config.clip_range) * inputs[s][1] for s in counted)
    # Per input: rounding to 2^-f, and float32 scaling (2^-23 relative to at most clip * weight).
    tolerance = len(counted) * (2.0**-config.fractional_bits + config.clip_range * 500 * 2.0**-23)
    np.testing.assert_allclose(outcome.result.sum_vector, clipped, rtol=0, atol=tolerance)


def test_a_denied_silo_is_subtracted_and_its_masks_removed(five) -> None:
    five.setup()
    for silo in five.config.silos:
        five.send(silo)
    denied = five.config.silos[1]
    five.server.exclude(denied, "policy: epsilon budget exceeded")
    five.finish()
    result = five.server.result()
    assert denied not in result.survivors
    assert result.dropped == {denied: "policy: epsilon budget exceeded"}
    survivors = set(five.config.silos) - {denied}
    np.testing.assert_array_equal(result.encoded_sum, expected_sum(five.config, five.inputs, survivors))


@pytest.mark.parametrize(
    ("point", "message"),
    [
        (DropPoint.BEFORE_ADVERTISE, "aborted at advertise keys: only 2 silos advertised keys; the threshold is 3"),
        (DropPoint.AFTER_ADVERTISE, "aborted at share keys: only 2 silos shared keys; the threshold is 3"),
        (DropPoint.AFTER_SHARE_KEYS, "aborted at masked input: only 2 inputs were counted; the threshold is 3"),
        (DropPoint.MID_STREAM, "aborted at masked input: only 2 inputs were counted; the threshold is 3"),
        (
            DropPoint.AFTER_INPUT,
            "aborted at consistency check: only 2 survivors confirmed the survivor set; the threshold is 3",
        ),
        (DropPoint.AFTER_CONFIRM, "aborted at unmasking: only 2 survivors revealed their shares; the threshold is 3"),
    ],
)
def test_fewer_than_t_silos_abort_with_the_step_the_count_and_the_threshold(point: DropPoint, message: str) -> None:
    config = make_config(5, 3, 40)
    leaving = {s: Dropout(point, 1) for s in silo_names(5)[:3]}
    with pytest.raises(SecAggAbort, match=message):
        run_local_round(config, random_inputs(config, np.random.default_rng(0)), dropouts=leaving)


def test_denials_that_leave_fewer_than_t_inputs_abort(five) -> None:
    five.setup()
    for silo in five.config.silos:
        five.send(silo)
    for silo in five.config.silos[:3]:
        five.server.exclude(silo, "denied")
    with pytest.raises(SecAggAbort, match="only 2 inputs were counted; the threshold is 3"):
        five.server.unmask_request()


def test_a_silo_that_sees_fewer_than_t_peers_aborts_on_its_own() -> None:
    config = make_config(4, 3, 10)
    inputs = random_inputs(config, np.random.default_rng(1))
    victim = config.silos[0]

    def strip_delivery(hop, data):
        if hop.message == "ShareDelivery" and hop.silo == victim:
            delivery = ShareDelivery.from_bytes(data)
            return ShareDelivery(delivery.receiver, delivery.shares[:1]).to_bytes()
        return data

    outcome = run_local_round(config, inputs, relay=strip_delivery)
    error = outcome.refusals[victim]
    assert isinstance(error, SecAggAbort)
    assert "only 2 silos shared keys (this one included); the threshold is 3" in error.reason
    assert outcome.result.survivors == set(config.silos) - {victim}
