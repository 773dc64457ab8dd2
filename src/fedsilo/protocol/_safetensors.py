"""safetensors bytes made in one allocation: the header, then each tensor's bytes copied once.

safetensors' own ``save`` builds the file in a buffer of its own and then copies it into the
``bytes`` it returns, so for a moment the process holds the model's encoding twice: 763 MiB
at 100M float32 parameters on the hub, which encodes every round's model for the download
and the registry. ``safetensors_bytes`` writes the header exactly as safetensors writes it
(the same tensor order, the same JSON, the same padding) and ``bytes.join`` copies the
header and every tensor's buffer straight into the one result (``safetensors_parts`` gives the
pieces to a writer that streams them to a file instead). The bytes are safetensors'
own, byte for byte (``tests/protocol/test_safetensors_bytes.py``), so a model's digest and a
checkpoint's do not change; reading stays with safetensors' loader.

Called by ``encode_weights`` (models) and the hub's checkpoints; it writes the dtypes they
hold (floats).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

# safetensors' name of each dtype written here, in its order: it lays tensors out by dtype
# (its enum's order, descending: F64, F32, F16), then by name.
_DTYPES: Final = {np.dtype("<f8"): "F64", np.dtype("<f4"): "F32", np.dtype("<f2"): "F16"}
_RANK: Final = {tag: rank for rank, tag in enumerate(_DTYPES.values())}
# The header is padded with spaces to a multiple of 8 bytes, so the data that follows is aligned.
_ALIGN: Final = 8


def safetensors_bytes(
    tensors: Mapping[str, npt.NDArray[np.generic]], metadata: Mapping[str, str] | None = None
) -> bytes:
    """``tensors`` (little-endian float64, float32 or float16) and ``metadata`` as safetensors bytes.

    The same bytes as ``safetensors.numpy.save(tensors, metadata)``, with the file built once.
    With more than one metadata entry the entries are written in sorted order (safetensors'
    own order for several is not fixed; every reader takes any order).

    Raises:
        ValueError: a tensor of another dtype, or named ``__metadata__``.
    """
    # bytes.join sizes the result first and copies each part into it once.
    return b"".join(safetensors_parts(tensors, metadata))


def safetensors_parts(
    tensors: Mapping[str, npt.NDArray[np.generic]], metadata: Mapping[str, str] | None = None
) -> list[bytes | memoryview]:
    """The pieces ``safetensors_bytes`` joins, in order: the header's size and text, then a byte view of each tensor.

    For a writer that streams them to a file (the hub's checkpoints) and never holds the
    file's bytes whole; the views share the tensors' memory. Raises as ``safetensors_bytes``.
    """
    entries: list[tuple[int, str, npt.NDArray[np.generic], str]] = []
    for name, tensor in tensors.items():
        # ascontiguousarray would turn a 0-d tensor into shape (1,); safetensors keeps its shape [].
        array = tensor if tensor.flags.c_contiguous else np.ascontiguousarray(tensor)
        tag = _DTYPES.get(array.dtype)
        if tag is None:
            raise ValueError(f"tensor {name!r} has dtype {array.dtype}; only little-endian floats are written")
        if name == "__metadata__":
            raise ValueError("a tensor cannot be named __metadata__ (the header's key for metadata)")
        entries.append((_RANK[tag], name, array, tag))
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(sorted(metadata.items()))
    offset = 0
    for _, name, array, tag in entries:
        header[name] = {"dtype": tag, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    # serde_json's compact form: no spaces, non-ASCII as UTF-8, control characters escaped as Python's json does.
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
    text += b" " * (-len(text) % _ALIGN)
    # A byte view of each tensor's memory copies nothing.
    return [len(text).to_bytes(8, "little"), text, *(entry[2].reshape(-1).view(np.uint8).data for entry in entries)]
