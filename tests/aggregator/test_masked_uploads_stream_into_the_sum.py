"""Masked uploads go into the round's sum chunk by chunk as they arrive, and a refused one comes out exactly.

Real secure aggregation (real keys, adverts, shares, masks, reveals): the hub's
``MaskedAggregation`` takes uploads interleaved chunk by chunk, some admitted, one refused
after its whole payload was added, one cut off by a bad chunk, one closed out mid-stream; its
unmasked sum is bit for bit the one today's whole-payload path (``SecAggServer.add_input`` of
the admitted payloads only) gives. Memory is bounded by allocation counts (tracemalloc), not
timings: streaming a payload through the hub, and taking it back out, holds a few chunks, not
the payload.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedsilo.aggregator._contracts import RoundFailed
from fedsilo.aggregator._masked import MaskedAggregation
from fedsilo.aggregator._streamed import PackedWords
from fedsilo.compression import pack_words, unpack_words
from fedsilo.identity import SigningKey
from fedsilo.protocol import CHUNK_BYTES, StreamError
from fedsilo.secagg import SecAggClient, SecAggConfig, SecAggServer, decode_sum

NAMES = ("a", "b", "c", "d", "e", "f", "g")
LENGTH = 5_003
# Small chunks, so every upload is many chunks and their ends fall anywhere.
PIECE = 700


class Hub:
    """One round's clients, the hub's streamed aggregation, and a reference server fed whole payloads."""

    def __init__(self, spill_dir: Path, length: int = LENGTH) -> None:
        signing = {n: SigningKey.generate() for n in NAMES}
        keys = {n: k.public_key for n, k in signing.items()}
        config = SecAggConfig("job", 1, NAMES, 3, length, 16, 4.0)
        self.clients = {n: SecAggClient(config, n, signing[n], keys) for n in NAMES}
        self.aggregation = MaskedAggregation(config, keys, spill_dir=spill_dir)
        self.reference = SecAggServer(config, keys)
        for step, send, receive in (
            ("advertise", SecAggClient.advertise, SecAggClient.receive_adverts),
            ("share", SecAggClient.share_keys, SecAggClient.receive_shares),
        ):
            posted = {n: send(c) for n, c in self.clients.items()}
            getattr(self.reference, "advertise" if step == "advertise" else "share_keys")(posted)
            for name, reply in self.aggregation.setup_step(step, posted).items():
                receive(self.clients[name], reply)
        rng = np.random.default_rng(7)
        self.values = {n: rng.uniform(-4.0, 4.0, length - 1) for n in NAMES}
        self.weights = {n: int(rng.integers(1, 50)) for n in NAMES}
        self.payloads = {n: self.clients[n].masked_input(self.values[n], self.weights[n]) for n in NAMES}

    def pieces(self, silo: str, size: int = PIECE) -> Iterator[tuple[int, np.ndarray]]:
        payload = self.payloads[silo]
        return ((offset, payload[offset : offset + size]) for offset in range(0, payload.size, size))

    def unmask(self, counted: list[str]) -> None:
        survivors = frozenset(counted)
        request = self.aggregation.unmask_request(survivors)
        assert request == self.reference.unmask_request()
        reveals = {s: self.clients[s].unmask(request) for s in counted}
        self.aggregation.unmask(reveals)
        self.reference.unmask(reveals)


def test_interleaved_uploads_refused_cut_off_and_closed_out_leave_exactly_the_admitted_sum(tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    sinks = {silo: hub.aggregation.open_update(silo) for silo in ("a", "b", "c", "d", "e")}
    streams = {silo: hub.pieces(silo) for silo in sinks}
    # a, b and c arrive interleaved chunk by chunk; d's second chunk comes at the wrong offset; e stops halfway.
    for _ in range(LENGTH // PIECE + 1):
        for silo in ("a", "b", "c"):
            piece = next(streams[silo], None)
            if piece is not None:
                sinks[silo].add(piece[0], "uint32", piece[1])
    for silo in ("a", "b", "c"):
        assert sinks[silo].finish().startswith("sha256:")
    offset, values = next(streams["d"])
    sinks["d"].add(offset, "uint32", values)
    with pytest.raises(StreamError, match="offset"):
        sinks["d"].add(offset + 2 * PIECE, "uint32", values)
    for _ in range(3):
        offset, values = next(streams["e"])
        sinks["e"].add(offset, "uint32", values)

    hub.aggregation.admit("a")
    hub.aggregation.exclude("b", "denied by the policy after its whole payload was added")
    hub.aggregation.admit("c")
    hub.aggregation.exclude("d", "payload_invalid")
    hub.aggregation.exclude("e", "the input step closed while it was uploading")
    # The closed-out upload goes on sending: nothing more of it reaches the sum.
    offset, values = next(streams["e"])
    with pytest.raises(StreamError, match="left out of the round"):
        sinks["e"].add(offset, "uint32", values)
    # A late second upload of a refused silo is born closed.
    late = hub.aggregation.open_update("b")
    with pytest.raises(StreamError, match="left out of the round"):
        late.add(0, "uint32", hub.payloads["b"][:PIECE])
    # f is admitted whole; g never sends.
    whole = hub.aggregation.open_update("f")
    for offset, values in hub.pieces("f", CHUNK_BYTES // 4):
        whole.add(offset, "uint32", values)
    whole.finish()
    hub.aggregation.admit("f")
    hub.aggregation.exclude("g", "dropped before sending its update")

    for silo in ("a", "c", "f"):
        hub.reference.add_input(silo, hub.payloads[silo])
    for silo in ("b", "d", "e", "g"):
        hub.reference.exclude(silo, "left out")
    hub.unmask(["a", "c", "f"])

    np.testing.assert_array_equal(hub.aggregation.server.raw_result(), hub.reference.raw_result())
    total = hub.aggregation.result()
    expected = sum(hub.values[s] * hub.weights[s] for s in ("a", "c", "f"))
    assert total.weight == sum(hub.weights[s] for s in ("a", "c", "f"))
    np.testing.assert_allclose(total.mean(1.0), expected, atol=3 * 2.0**-16 * total.weight)
    assert decode_sum(hub.reference.raw_result(), 16)[1] == total.weight


def test_a_refused_silo_cannot_be_counted_and_an_unfinished_payload_is_never_admitted(tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    sink = hub.aggregation.open_update("a")
    offset, values = next(hub.pieces("a"))
    sink.add(offset, "uint32", values)
    with pytest.raises(RuntimeError, match="did not arrive whole"):
        hub.aggregation.admit("a")


def test_a_refused_upload_whose_kept_chunks_changed_fails_the_round_instead_of_moving_the_sum(tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    sinks = {silo: hub.aggregation.open_update(silo) for silo in ("a", "b")}
    for silo, sink in sinks.items():
        for offset, values in hub.pieces(silo):
            sink.add(offset, "uint32", values)
        sink.finish()
    hub.aggregation.admit("b")
    # A fault no wire can cause: the hub's own spill file changes under it (a bad disk, another
    # process with the hub's rights), so this test writes into the sink's open file directly.
    spill = sinks["a"]._spill
    assert spill is not None
    spill.seek(3)
    spill.write(b"\xff")
    hub.aggregation.exclude("a", "denied by the policy after its whole payload was added")
    with pytest.raises(RoundFailed, match="a's kept chunks no longer hash to what arrived"):
        hub.aggregation.unmask_request(frozenset({"b"}))


@pytest.mark.parametrize("word_bits", [1, 3, 5, 12, 16, 24, 32])
def test_packed_words_read_in_pieces_of_any_size_are_the_whole_unpacking(word_bits: int) -> None:
    rng = np.random.default_rng(word_bits)
    count = 1_237
    words = rng.integers(0, 2**word_bits, count, dtype=np.uint64).astype(np.uint32)
    packed = pack_words(words, word_bits)
    reader = PackedWords(word_bits, count)
    out = np.zeros(count, dtype=np.uint32)
    start = 0
    for size in rng.integers(1, 60, packed.size):
        offset, piece = reader.feed(packed[start : start + int(size)])
        out[offset : offset + piece.size] = piece
        start += int(size)
        if start >= packed.size:
            break
    offset, piece = reader.finish()
    out[offset : offset + piece.size] = piece
    np.testing.assert_array_equal(out, unpack_words(packed, word_bits, count))


def test_streaming_a_payload_into_the_sum_and_taking_it_back_out_holds_a_few_chunks_not_the_payload(
    tmp_path: Path,
) -> None:
    words = 12 * (CHUNK_BYTES // 4) + 123  # a 12 MiB payload, its last chunk short
    config = SecAggConfig("job", 1, ("a", "b"), 2, words, 16, 4.0)
    keys = {n: SigningKey.generate().public_key for n in config.silos}
    aggregation = MaskedAggregation(config, keys, spill_dir=tmp_path)
    payload = np.random.default_rng(1).integers(0, 2**32, words, dtype=np.uint32)
    step = CHUNK_BYTES // 4
    tracemalloc.start()
    try:
        sink = aggregation.open_update("a")
        for offset in range(0, words, step):
            sink.add(offset, "uint32", payload[offset : offset + step])
        sink.finish()
        _, streamed_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        aggregation.exclude("a", "denied")
        _, withdrawn_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One chunk's words in flight while streaming; reading the kept chunks back adds a chunk or two.
    assert streamed_peak < 2 * CHUNK_BYTES
    assert withdrawn_peak < 4 * CHUNK_BYTES < payload.nbytes / 3
    # Taken out exactly: the sum is all zeros again (no masks were applied in this round).
    assert not aggregation.server._sum.any()
