"""Client and server are state machines: each step once, in order, and a step closes for good.

Also: the configuration both ends share, and the server's memory, which is one model
whatever the number of silos.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from fedsilo.api import RoundNumber, SiloName
from fedsilo.secagg import (
    MaskedChunk,
    PayloadRejected,
    ProtocolStateError,
    SecAggConfig,
    SecAggError,
    run_local_round,
)

from .conftest import expected_sum, make_config


def test_client_steps_must_come_in_order(five) -> None:
    client = five.clients[five.config.silos[0]]
    with pytest.raises(
        ProtocolStateError, match=r"masked_input\(\) called while the client of silo-a expects advertise\(\)"
    ):
        client.masked_input(np.zeros(101, np.float32), 1)
    client.advertise()
    with pytest.raises(ProtocolStateError, match="expects share_keys"):
        client.advertise()


def test_a_client_masks_only_once_so_its_masks_are_never_reused(five) -> None:
    five.setup()
    silo = five.config.silos[0]
    five.mask(silo)
    with pytest.raises(ProtocolStateError, match="expects confirm"):
        five.mask(silo)


def test_a_client_answers_one_unmask_request_only(five) -> None:
    five.setup()
    for silo in five.config.silos:
        five.send(silo)
    request = five.server.unmask_request()
    for silo in request.survivors:
        five.server.receive_confirmation(silo, five.clients[silo].confirm(request))
    confirmations = five.server.confirmations()
    client = five.clients[five.config.silos[0]]
    client.unmask(confirmations)
    with pytest.raises(ProtocolStateError, match="expects done"):
        client.unmask(confirmations)


def test_a_silo_mid_stream_when_the_input_step_closes_is_subtracted_again(five) -> None:
    five.setup()
    silos = five.config.silos
    for silo in silos[:4]:
        five.send(silo)
    for chunk in five.mask(silos[4])[:3]:
        five.server.add_chunk(silos[4], chunk)
    five.finish()
    result = five.server.result()
    assert result.dropped == {silos[4]: "masked input: sent 48 words, not all, before the step closed"}
    np.testing.assert_array_equal(result.encoded_sum, expected_sum(five.config, five.inputs, set(silos[:4])))
    assert five.server.result() is result


def test_the_server_refuses_what_does_not_fit_the_step(five) -> None:
    silos = five.config.silos
    chunk = MaskedChunk(silos[0], 0, np.zeros(16, np.uint32))
    with pytest.raises(ProtocolStateError, match="masked input: the round is at the advertise keys step"):
        five.server.add_chunk(silos[0], chunk)
    five.setup()
    with pytest.raises(ProtocolStateError, match="the round is at the masked input step"):
        five.server.broadcast_keys()
    five.send(silos[0])
    with pytest.raises(PayloadRejected, match="after its input was finished"):
        five.server.add_chunk(silos[0], chunk)
    with pytest.raises(PayloadRejected, match="input ended after 0 of 102 words"):
        five.server.finish_input(silos[1], "sha256:00")
    with pytest.raises(ProtocolStateError, match="silo-b is left out of this round"):
        five.server.add_chunk(silos[1], chunk)
    for silo in silos[2:]:
        five.send(silo)
    five.server.unmask_request()
    with pytest.raises(ProtocolStateError, match="the survivors are fixed"):
        five.server.exclude(silos[2], "too late")
    with pytest.raises(SecAggError, match="'silo-z' is not a silo of job job round 3"):
        five.server.exclude(SiloName("silo-z"), "unknown")


def test_shamir_points_follow_the_sorted_silo_names_whatever_the_job_lists() -> None:
    config = SecAggConfig("job", RoundNumber(1), (SiloName("b"), SiloName("c"), SiloName("a")), 2, 10, 8, 1.0)
    assert [config.x_of(SiloName(s)) for s in "abc"] == [1, 2, 3]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"threshold": 1}, "between 2 and the 3 silos"),
        ({"threshold": 4}, "between 2 and the 3 silos"),
        ({"chunk_elements": 6}, "multiple of 4"),
        ({"silos": (SiloName("a"), SiloName("a"), SiloName("b"))}, "distinct"),
        ({"fractional_bits": 32}, "do not fit"),
        ({"clip_range": float("inf")}, "positive and finite"),
    ],
)
def test_invalid_configurations_are_refused(changes: dict, message: str) -> None:
    fields = {
        "job": "job",
        "round": RoundNumber(1),
        "silos": (SiloName("a"), SiloName("b"), SiloName("c")),
        "threshold": 2,
        "vector_length": 10,
        "fractional_bits": 8,
        "clip_range": 1.0,
    }
    with pytest.raises(SecAggError, match=message):
        SecAggConfig(**(fields | changes))


def _peak_bytes(n: int) -> int:
    config = make_config(n, n // 2 + 1, 200_000, chunk=8192)
    rng = np.random.default_rng(0)
    values = rng.uniform(-1, 1, config.vector_length).astype(np.float32)
    inputs = {s: (values, 10) for s in config.silos}  # one array for all: inputs are not the server's memory
    tracemalloc.start()
    try:
        outcome = run_local_round(config, inputs, dropouts={}, denied={config.silos[0]: "denied"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(outcome.result.survivors) == n - 1
    return peak


def test_the_rounds_memory_is_one_model_whatever_the_number_of_silos() -> None:
    small, large = _peak_bytes(4), _peak_bytes(16)
    words = 4 * 200_001
    assert large < 1.2 * small, (small, large)
    # The running uint32 sum, the float64 result decoded from it, and chunk-sized buffers.
    assert large < 3 * words + 1_000_000, (large, words)
