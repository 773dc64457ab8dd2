"""Models and checkpoints are encoded in one allocation, and the bytes are safetensors' own.

A model's digest names it in the registry, in every round plan and in a checkpoint, so the
encoding built without safetensors' second copy must give exactly the bytes
``safetensors.numpy.save`` gives: compared here over random models (names that sort
differently by bytes and by case, non-ASCII and escaped characters, empty and scalar tensors,
float64, float32 and float16 side by side, header lengths on either side of the 8-byte
padding). The last test bounds what encoding allocates (tracemalloc counts allocations, not time).
"""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys

import numpy as np
import numpy.typing as npt
import pytest
from safetensors.numpy import save

from fedsilo.protocol import decode_weights, encode_weights, safetensors_bytes
from fedsilo.protocol._streams import _ORDER_KEY

NAMES = ["w", "W", "bias", "layer.0.weight", "é", 'ü/"quoted"', "tab\tand\nnewline", "\x01", "z" * 40, "日本"]


def _model(seed: int) -> dict[str, npt.NDArray[np.generic]]:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, len(NAMES) + 1))
    model: dict[str, npt.NDArray[np.generic]] = {}
    for name in rng.permutation(NAMES)[:count]:
        shape = tuple(int(n) for n in rng.integers(0, 5, int(rng.integers(0, 4))))
        dtype = rng.choice([np.float64, np.float32, np.float16])
        model[str(name) + "".join(rng.choice(list(string.ascii_letters), int(rng.integers(0, 9))))] = rng.normal(
            size=shape
        ).astype(dtype)
    return model


@pytest.mark.parametrize("seed", range(40))
def test_the_bytes_are_safetensors_own(seed: int) -> None:
    model = _model(seed)
    assert safetensors_bytes(model) == save(model)
    metadata = {"fedsilo.order": json.dumps(list(model))}
    assert safetensors_bytes(model, metadata) == save(model, metadata=metadata)


def test_an_encoded_model_is_safetensors_own_and_reads_back() -> None:
    model = {name: tensor.astype(np.float32) for name, tensor in _model(7).items()}
    data = encode_weights(model)
    # What encode_weights returned before: safetensors' save of the contiguous float32 tensors.
    assert data == save(
        {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in model.items()},
        metadata={_ORDER_KEY: json.dumps(list(model))},
    )
    decoded = decode_weights(data)
    assert list(decoded) == list(model)
    for name, tensor in model.items():
        np.testing.assert_array_equal(decoded[name], tensor.reshape(decoded[name].shape))


def test_an_empty_model_is_safetensors_own() -> None:
    assert safetensors_bytes({}) == save({})


@pytest.mark.parametrize(
    ("tensors", "named"),
    [
        ({"counts": np.zeros(3, dtype=np.int32)}, "tensor 'counts' has dtype int32"),
        ({"big": np.zeros(3, dtype=">f4")}, "tensor 'big' has dtype >f4"),
        ({"__metadata__": np.zeros(3, dtype=np.float32)}, "cannot be named __metadata__"),
    ],
)
def test_a_tensor_it_cannot_write_is_refused_by_name(tensors: dict[str, npt.NDArray[np.generic]], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        safetensors_bytes(tensors)


# Run in a fresh interpreter so that its peak resident set is this encoding's alone. safetensors'
# own ``save`` fills a buffer outside Python's allocator and then copies it into the bytes, so
# tracemalloc cannot see the difference; the resident set can.
_ENCODE_IN_A_CHILD = """
import resource, sys
import numpy as np
from fedsilo.protocol import encode_weights
model = {"a": np.ones(20_000_000, dtype=np.float32), "b": np.ones(5_000_000, dtype=np.float32)}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
data = encode_weights(model)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024, len(data))
"""


def test_encoding_a_100_mb_model_holds_its_bytes_once() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _ENCODE_IN_A_CHILD], capture_output=True, text=True, check=True, env=os.environ
    )
    growth, size = (int(n) for n in completed.stdout.split())
    assert size > 100_000_000
    # Before: safetensors' buffer and the bytes, twice the model.
    assert growth < 1.4 * size
