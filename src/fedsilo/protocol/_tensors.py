"""Named tensors and their flat form.

Models travel as an ordered mapping of names to float32 arrays (``Weights``). Secure
aggregation, clipping and the wire work on one flat float32 vector, so a ``TensorLayout``
records names, shapes and order to go back and forth without guessing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Weights = dict[str, npt.NDArray[np.float32]]
FloatVector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor's shape."""

    name: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class TensorLayout:
    """The order and shapes of a model's tensors; equal layouts mean compatible models."""

    tensors: tuple[TensorSpec, ...]

    @classmethod
    def of(cls, weights: Mapping[str, npt.NDArray[np.generic]]) -> TensorLayout:
        """The layout of ``weights`` in its iteration order."""
        return cls(tuple(TensorSpec(name, tuple(a.shape)) for name, a in weights.items()))

    @property
    def size(self) -> int:
        """Total number of elements."""
        return sum(t.size for t in self.tensors)

    def flatten(self, weights: Mapping[str, npt.NDArray[np.generic]]) -> FloatVector:
        """Concatenate ``weights`` in layout order; raise ``ValueError`` on a mismatch."""
        self.check(weights)
        if not self.tensors:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([np.asarray(weights[t.name], dtype=np.float32).reshape(-1) for t in self.tensors])

    def unflatten(self, vector: npt.NDArray[np.generic]) -> Weights:
        """Split a flat vector back into named float32 arrays."""
        if vector.ndim != 1 or vector.size != self.size:
            raise ValueError(f"vector has shape {vector.shape}, layout needs ({self.size},)")
        out: Weights = {}
        offset = 0
        for t in self.tensors:
            out[t.name] = np.asarray(vector[offset : offset + t.size], dtype=np.float32).reshape(t.shape)
            offset += t.size
        return out

    def check(self, weights: Mapping[str, npt.NDArray[np.generic]]) -> None:
        """Raise ``ValueError`` naming the first tensor whose name or shape differs."""
        names = list(weights)
        expected = [t.name for t in self.tensors]
        if names != expected:
            missing = sorted(set(expected) - set(names))
            extra = sorted(set(names) - set(expected))
            raise ValueError(f"tensor names differ: missing {missing}, unexpected {extra}")
        for t in self.tensors:
            shape = tuple(weights[t.name].shape)
            if shape != t.shape:
                raise ValueError(f"tensor {t.name!r} has shape {shape}, expected {t.shape}")


def architecture_fingerprint(weights: Mapping[str, npt.NDArray[np.generic]]) -> str:
    """``sha256:`` over the sorted parameter names with their shapes and dtypes.

    Two models fingerprint alike exactly when they are the same architecture stored the same
    way; values do not enter, so every round of a job has one fingerprint. The hub computes
    it from its initial model and the sidecar from its trainer's weights, and an update
    whose fingerprint differs is denied before its payload is read. (A digest, not a
    signature: plain ``hashlib``, like the payload digests.)
    """
    described = sorted((name, list(array.shape), array.dtype.str) for name, array in weights.items())
    document = json.dumps(described, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(document).hexdigest()
