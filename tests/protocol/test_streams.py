"""Chunked streams reassemble exactly and refuse oversized, reordered or truncated input."""

from __future__ import annotations

import numpy as np
import pytest

from fedsilo.protocol import (
    CHUNK_BYTES,
    StreamError,
    TensorLayout,
    blob_from_chunks,
    blob_to_chunks,
    decode_weights,
    encode_weights,
    pb,
)


def test_a_large_blob_travels_in_chunks_below_the_grpc_limit() -> None:
    data = np.random.default_rng(0).bytes(5 * CHUNK_BYTES + 17)
    chunks = list(blob_to_chunks(data))
    assert len(chunks) == 6
    assert max(c.ByteSize() for c in chunks) < 2 * CHUNK_BYTES
    assert blob_from_chunks(chunks, limit=len(data)) == data


def test_an_oversized_stream_is_refused_before_it_is_read() -> None:
    chunks = list(blob_to_chunks(b"x" * 100))
    with pytest.raises(StreamError, match="over the limit"):
        blob_from_chunks(chunks, limit=99)


def test_a_reordered_or_truncated_stream_is_refused() -> None:
    chunks = list(blob_to_chunks(b"y" * (3 * CHUNK_BYTES)))
    with pytest.raises(StreamError, match="expected"):
        blob_from_chunks([chunks[1], chunks[0], chunks[2]], limit=10 * CHUNK_BYTES)
    with pytest.raises(StreamError, match="ended after"):
        blob_from_chunks(chunks[:2], limit=10 * CHUNK_BYTES)
    with pytest.raises(StreamError, match="changed its total"):
        blob_from_chunks([chunks[0], pb.BytesChunk(offset=CHUNK_BYTES, total=1, data=b"")], limit=10 * CHUNK_BYTES)


def test_weights_round_trip_in_model_order_through_safetensors() -> None:
    weights = {"z.weight": np.ones((2, 3), np.float32), "a.bias": np.arange(3, dtype=np.float32)}
    decoded = decode_weights(encode_weights(weights))
    assert list(decoded) == ["z.weight", "a.bias"]
    assert TensorLayout.of(decoded) == TensorLayout.of(weights)
    np.testing.assert_array_equal(decoded["a.bias"], weights["a.bias"])


def test_bytes_that_are_not_safetensors_are_refused_without_unpickling() -> None:
    import pickle

    with pytest.raises(StreamError):
        decode_weights(pickle.dumps({"a": 1}))
    with pytest.raises(StreamError):
        decode_weights(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")


def test_layout_names_the_tensor_that_does_not_fit() -> None:
    layout = TensorLayout.of({"w": np.zeros((2, 2), np.float32)})
    with pytest.raises(ValueError, match="'w' has shape"):
        layout.check({"w": np.zeros((3,), np.float32)})
    with pytest.raises(ValueError, match="missing"):
        layout.check({"v": np.zeros((2, 2), np.float32)})
