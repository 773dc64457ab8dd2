"""What the hub receives and holds says nothing about one silo's input: masked payloads look
uniform, no message or stored array holds an encoded input, and fewer than t shares
rebuild nothing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedsilo.api import SiloName
from fedsilo.secagg import (
    MaskedChunk,
    ShamirError,
    ShareKeys,
    UnmaskResponse,
    reconstruct,
    run_local_round,
)

from .conftest import encoded, make_config, random_inputs


def _masked_vectors(config, inputs) -> dict[SiloName, np.ndarray]:
    vectors = {s: np.zeros(config.masked_length, dtype=np.uint32) for s in config.silos}

    def capture(hop, data):
        if hop.message == "MaskedChunk":
            chunk = MaskedChunk.from_bytes(data)
            vectors[chunk.silo][chunk.offset : chunk.offset + chunk.words.size] = chunk.words
        return data

    run_local_round(config, inputs, relay=capture)
    return vectors


def test_a_masked_payload_differs_from_the_input_everywhere_and_looks_uniform() -> None:
    config = make_config(4, 3, 20_000, chunk=4096)
    inputs = random_inputs(config, np.random.default_rng(2))
    for silo, masked in _masked_vectors(config, inputs).items():
        plain = encoded(config, inputs, silo)
        assert np.mean(masked == plain) < 0.001
        # Encoded values cluster near 0 and 2^32; masked ones spread evenly over all 16
        # top-nibble bins (chi-square with 15 degrees of freedom, p < 1e-6 above 50).
        counts = np.bincount(masked >> 28, minlength=16)
        expected = masked.size / 16
        assert ((counts - expected) ** 2 / expected).sum() < 50
        assert ((np.bincount(plain >> 28, minlength=16) - expected) ** 2 / expected).sum() > 1000
        bits = np.unpackbits(masked.view(np.uint8))
        assert abs(bits.mean() - 0.5) < 0.01


def test_no_message_the_hub_receives_contains_an_encoded_input() -> None:
    config = make_config(5, 3, 300, chunk=64)
    inputs = random_inputs(config, np.random.default_rng(3))
    plain_chunks = [
        encoded(config, inputs, s)[offset : offset + config.chunk_length(offset)].tobytes()
        for s in config.silos
        for offset in config.chunk_offsets()
    ]
    received: list[bytes] = []

    def capture(hop, data):
        if hop.upstream:
            received.append(data)
        return data

    run_local_round(config, inputs, relay=capture)
    assert len(received) > 5 * len(config.chunk_offsets())
    for data in received:
        for chunk in plain_chunks:
            assert chunk not in data


def _reachable_buffers(root: object) -> list[bytes]:
    """Every array and byte string reachable from ``root``'s attributes, as bytes."""
    found, seen, stack = [], set(), [root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray):
            found.append(item.tobytes())
        elif isinstance(item, bytes | bytearray | memoryview):
            found.append(bytes(item))
        elif isinstance(item, dict):
            stack += list(item.keys()) + list(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack += list(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack += [getattr(item, f.name) for f in dataclasses.fields(item)]
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            stack += list(vars(item).values())
    return found


def test_the_server_never_stores_a_single_encoded_input(five) -> None:
    five.setup()
    for silo in five.config.silos:
        five.send(silo)
    five.server.exclude(five.config.silos[4], "denied after its input was added")
    plain = {s: encoded(five.config, five.inputs, s).tobytes() for s in five.config.silos}
    stored = _reachable_buffers(five.server)
    assert any(len(b) == 4 * five.config.masked_length for b in stored)  # the running sum is in view
    for data in stored:
        for vector in plain.values():
            assert vector not in data
    five.finish()
    five.server.result()
    for data in _reachable_buffers(five.server):
        for vector in plain.values():
            assert vector not in data


def test_t_minus_one_revealed_shares_rebuild_a_wrong_seed() -> None:
    config = make_config(5, 3, 8)
    inputs = random_inputs(config, np.random.default_rng(4))
    commitments: dict[SiloName, bytes] = {}
    responses: list[UnmaskResponse] = []

    def capture(hop, data):
        if hop.message == "ShareKeys":
            message = ShareKeys.from_bytes(data)
            commitments[message.silo] = message.seed_commitment
        if hop.message == "UnmaskResponse":
            responses.append(UnmaskResponse.from_bytes(data))
        return data

    run_local_round(config, inputs, relay=capture)
    owner = responses[0].seed_shares[0].owner
    shares = [next(r.share for r in response.seed_shares if r.owner == owner) for response in responses]
    rebuilt = reconstruct(shares[:3], 3, 32)
    assert config.seed_commitment(rebuilt, owner) == commitments[owner]
    with pytest.raises(ShamirError, match="2 shares cannot rebuild a secret shared with threshold 3"):
        reconstruct(shares[:2], 3, 32)
    # Interpolating the t-1 shares as if the polynomial had degree t-2 yields some other value.
    for pair in ((0, 1), (1, 2), (0, 2)):
        try:
            guess = reconstruct([shares[i] for i in pair], 2, 66)[-32:]
        except ShamirError:
            continue
        assert guess != rebuilt
        assert config.seed_commitment(guess, owner) != commitments[owner]
