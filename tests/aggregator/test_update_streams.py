"""An update streamed in chunks reassembles exactly; a missing, repeated, reordered or oversized
chunk is refused with a reason that names it."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from fedsilo.aggregator._aggregation import BufferedSink
from fedsilo.protocol import CHUNK_BYTES, StreamError

WORDS = CHUNK_BYTES // 4
LENGTH = 3 * WORDS + 5


def _chunks(vector: np.ndarray) -> list[tuple[int, np.ndarray]]:
    return [(offset, vector[offset : offset + WORDS]) for offset in range(0, vector.size, WORDS)]


def _vector() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 2**32, LENGTH, dtype=np.uint32)


def _stream(chunks: list[tuple[int, np.ndarray]]) -> BufferedSink:
    sink = BufferedSink(LENGTH, "uint32", check_finite=False)
    for offset, values in chunks:
        sink.add(offset, "uint32", values)
    return sink


def test_an_update_streamed_in_chunks_reassembles_exactly_with_the_digest_of_its_bytes() -> None:
    vector = _vector()
    sink = _stream(_chunks(vector))
    assert sink.finish() == "sha256:" + hashlib.sha256(vector.tobytes()).hexdigest()
    np.testing.assert_array_equal(sink.vector, vector)


def test_a_missing_chunk_is_refused() -> None:
    chunks = _chunks(_vector())
    with pytest.raises(StreamError, match=f"chunk at offset {2 * WORDS}, expected {WORDS}"):
        _stream([chunks[0], *chunks[2:]])
    sink = _stream(chunks[:-1])
    with pytest.raises(StreamError, match=f"ended after {3 * WORDS} of {LENGTH} values"):
        sink.finish()


def test_a_repeated_chunk_is_refused() -> None:
    chunks = _chunks(_vector())
    with pytest.raises(StreamError, match=f"chunk at offset 0, expected {WORDS}"):
        _stream([chunks[0], chunks[0], *chunks[1:]])


def test_a_reordered_stream_is_refused() -> None:
    chunks = _chunks(_vector())
    with pytest.raises(StreamError, match=f"chunk at offset {WORDS}, expected 0"):
        _stream([chunks[1], chunks[0], *chunks[2:]])


def test_an_oversized_chunk_is_refused_before_it_is_copied() -> None:
    vector = _vector()
    with pytest.raises(StreamError, match=f"chunk of {CHUNK_BYTES + 4} bytes is over the {CHUNK_BYTES} bytes"):
        _stream([(0, vector[: WORDS + 1])])


def test_a_stream_longer_than_the_model_is_refused() -> None:
    sink = BufferedSink(10, "uint32", check_finite=False)
    with pytest.raises(StreamError, match="longer than the model"):
        sink.add(0, "uint32", np.zeros(11, dtype=np.uint32))
