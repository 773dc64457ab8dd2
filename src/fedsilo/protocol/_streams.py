"""Cutting byte strings and vectors into gRPC-sized chunks and putting them back together.

Used by the aggregator, the sidecar and the trainer for every model and update that
crosses a process boundary. Reassembly is strict: a stream that claims more than the
receiver's limit, skips or repeats an offset, or ends short is refused with a reason,
before anything is parsed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

import numpy as np
import numpy.typing as npt
from safetensors import SafetensorError
from safetensors.numpy import load as safetensors_load

from ._safetensors import safetensors_bytes
from ._tensors import Weights

# 1 MiB per message keeps every message far below gRPC's 4 MiB default limit.
CHUNK_BYTES = 1 << 20


class StreamError(ValueError):
    """A stream that cannot be accepted; the message says what was wrong."""


def split_bytes(data: bytes, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(offset, total, slice)`` covering ``data``; an empty blob yields one empty slice."""
    total = len(data)
    if total == 0:
        yield 0, 0, b""
        return
    view = memoryview(data)
    for offset in range(0, total, chunk_bytes):
        yield offset, total, bytes(view[offset : offset + chunk_bytes])


def check_chunk_size(size: int) -> None:
    """Refuse one message's slice of more than ``CHUNK_BYTES`` (every sender cuts its streams at that size)."""
    if size > CHUNK_BYTES:
        raise StreamError(f"a chunk of {size} bytes is over the {CHUNK_BYTES} bytes one message may carry")


class BlobAssembler:
    """Collects ``(offset, total, data)`` slices in order, refusing anything over ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._total: int | None = None

    def add(self, offset: int, total: int, data: bytes) -> None:
        """Append one slice; raise ``StreamError`` on a size, order or length problem."""
        if total > self._limit:
            raise StreamError(f"stream announces {total} bytes, over the limit of {self._limit}")
        if self._total is None:
            self._total = total
        elif total != self._total:
            raise StreamError(f"stream changed its total from {self._total} to {total}")
        check_chunk_size(len(data))
        if offset != len(self._buffer):
            raise StreamError(f"chunk at offset {offset}, expected {len(self._buffer)}")
        if len(self._buffer) + len(data) > total:
            raise StreamError("chunks exceed the announced total")
        self._buffer.extend(data)

    def result(self) -> bytes:
        """The whole blob; raise ``StreamError`` if it ended short."""
        if self._total is None:
            raise StreamError("stream carried no data")
        if len(self._buffer) != self._total:
            raise StreamError(f"stream ended after {len(self._buffer)} of {self._total} bytes")
        return bytes(self._buffer)


_ORDER_KEY = "fedsilo.tensor_order"


def encode_weights(weights: Mapping[str, npt.NDArray[np.generic]]) -> bytes:
    """Weights as safetensors bytes; the model's tensor order rides in the header metadata.

    Built in one allocation (``safetensors_bytes``): the same bytes safetensors' ``save`` makes,
    without its second copy of the whole model.
    """
    return safetensors_bytes(
        {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()},
        metadata={_ORDER_KEY: json.dumps(list(weights))},
    )


def _header_order(data: bytes) -> list[str]:
    """The tensor order recorded by ``encode_weights`` (safetensors itself sorts names)."""
    if len(data) < 8:
        raise StreamError("model bytes are too short to be safetensors")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise StreamError("safetensors header is longer than the data")
    try:
        header = json.loads(data[8 : 8 + size])
        order = json.loads(header["__metadata__"][_ORDER_KEY])
    except (ValueError, KeyError, TypeError) as error:
        raise StreamError("model bytes carry no fedsilo tensor order") from error
    if not isinstance(order, list) or not all(isinstance(n, str) for n in order):
        raise StreamError("model tensor order is not a list of names")
    return order


def decode_weights(data: bytes) -> Weights:
    """Parse safetensors bytes into float32 weights; never executes or unpickles anything."""
    order = _header_order(data)
    try:
        loaded = safetensors_load(data)
    except (SafetensorError, ValueError) as error:
        raise StreamError(f"model bytes are not valid safetensors: {error}") from error
    if sorted(order) != sorted(loaded):
        raise StreamError("model tensor order does not match the tensors it describes")
    out: Weights = {}
    for name in order:
        array = loaded[name]
        if array.dtype != np.float32:
            raise StreamError(f"tensor {name!r} has dtype {array.dtype}, expected float32")
        out[name] = array
    return out


# uint8: homomorphic mode's framed SEAL ciphertexts (fedsilo.he.wire), or a compressed
# payload's packed words (fedsilo.compression).
_DTYPES: dict[str, npt.DTypeLike] = {"uint32": np.dtype("<u4"), "float32": np.dtype("<f4"), "uint8": np.dtype("u1")}


def vector_dtype(name: str) -> np.dtype[np.generic]:
    """The little-endian numpy dtype of a wire dtype name; ``StreamError`` if unknown."""
    try:
        return np.dtype(_DTYPES[name])
    except KeyError as error:
        raise StreamError(f"unknown vector dtype {name!r}; expected uint32, float32 or uint8") from error


def vector_to_bytes(array: npt.NDArray[np.generic], dtype: str) -> bytes:
    """Raw little-endian bytes of a 1-D array in the named wire dtype."""
    return np.ascontiguousarray(array, dtype=vector_dtype(dtype)).tobytes()


def vector_from_bytes(data: bytes, dtype: str) -> npt.NDArray[np.generic]:
    """A read-only 1-D array over raw little-endian bytes."""
    wire = vector_dtype(dtype)
    if len(data) % wire.itemsize:
        raise StreamError(f"{len(data)} bytes is not a whole number of {dtype} values")
    return np.frombuffer(data, dtype=wire)
