"""How accepted updates are combined within one round: the interface and the plain mode.

Every mode receives *weighted* inputs: a silo sends ``[n * update..., n]`` (its sample
count as the last coordinate), so the sum carries the FedAvg numerator and denominator
and the mean needs nothing but the sum. The masked mode (``_masked.py``) and the
homomorphic mode (``_homomorphic.py``) implement the same interface over secure
aggregation and multiparty CKKS; plain mode exists for tests and comparisons. Each mode hands
its sum over as a ``RoundSum``, which the coordinator reads slice by slice instead of copying.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

from fedsilo.protocol import StreamError, check_chunk_size

from ._sketches import UpdateSketches


def chunk_end(
    expected_dtype: str, filled: int, length: int, offset: int, dtype: str, values: npt.NDArray[np.generic]
) -> int:
    """Where a chunk ends in an update of ``length`` values, once its dtype, size and place are checked.

    Every sink reads an update's chunks in order through this one check, so a plain and a
    masked upload refuse the same malformed stream with the same message.
    """
    if dtype != expected_dtype:
        raise StreamError(f"this round takes {expected_dtype} chunks, got {dtype}")
    check_chunk_size(values.nbytes)
    if offset != filled:
        raise StreamError(f"chunk at offset {offset}, expected {filled}")
    end = offset + values.size
    if end > length:
        raise StreamError(f"update is longer than the model ({length} values)")
    return end


#: Values read per slice when a whole vector is divided or checked: temporaries of at most 512 KiB.
_SLICE: Final = 1 << 16


class RoundSum(ABC):
    """The sum of a round's admitted weighted updates (the weight word left out), as ``Aggregation.result`` hands it over.

    Not an array the caller may change: at 100M parameters a float64 copy of the sum is 763 MiB,
    and the masked sum is held as uint32 words. What the coordinator needs of it is the weight
    word, the sum's L2 norm (the bound on a liar, ``_bounds.py``) and the mean update in float32
    (the strategy's input); each mode computes them from what it already holds, slice by slice.
    """

    def __init__(self, size: int, weight: float) -> None:
        self.size = size
        self.weight = weight

    @abstractmethod
    def norm(self) -> float:
        """The sum's L2 norm."""

    @abstractmethod
    def mean(self, divisor: float) -> npt.NDArray[np.float32]:
        """The sum divided by ``divisor`` in float64 and rounded to float32: a new array the caller may change."""


class FloatSum(RoundSum):
    """A sum held as float64 values: the mode's own array, read and never changed (plain, homomorphic, compressed)."""

    def __init__(self, values: npt.NDArray[np.float64], weight: float) -> None:
        super().__init__(values.size, weight)
        self._values = values

    def norm(self) -> float:
        return float(np.linalg.norm(self._values))

    def mean(self, divisor: float) -> npt.NDArray[np.float32]:
        """Element by element what ``(values / divisor).astype(np.float32)`` gives, with one slice of float64 at a time."""
        mean = np.empty(self.size, dtype=np.float32)
        scratch = np.empty(min(_SLICE, self.size), dtype=np.float64)
        for start in range(0, self.size, _SLICE):
            end = min(start + _SLICE, self.size)
            quotient = scratch[: end - start]
            np.divide(self._values[start:end], divisor, out=quotient)
            np.copyto(mean[start:end], quotient, casting="same_kind")
        return mean


class UpdateSink(ABC):
    """Receives one silo's vector chunk by chunk, in order."""

    @abstractmethod
    def add(self, offset: int, dtype: str, values: npt.NDArray[np.generic]) -> None:
        """Take one chunk; raise ``StreamError`` on a gap, overlap, size or dtype problem."""

    @abstractmethod
    def finish(self) -> str:
        """Close the stream and return the ``sha256:`` digest of the bytes received."""


class Aggregation(ABC):
    """One round's combination of updates."""

    #: Secure-aggregation steps before the input step (empty in plain mode).
    setup_steps: tuple[str, ...] = ()

    def __init__(self, vector_length: int) -> None:
        # Payload length: the update plus the weight coordinate.
        self.vector_length = vector_length

    def setup_step(self, step: str, posted: Mapping[str, bytes]) -> dict[str, bytes]:
        """Close a setup step: from every silo's message, the reply each silo gets."""
        raise NotImplementedError(f"{type(self).__name__} has no step {step!r}")

    @abstractmethod
    def open_update(self, silo: str) -> UpdateSink:
        """A sink for ``silo``'s vector; nothing counts until ``admit``."""

    @abstractmethod
    def admit(self, silo: str) -> None:
        """Count ``silo``'s finished vector in the aggregate (its update passed the gate)."""

    def admit_weighted(self, silo: str, weight: int) -> None:
        """``admit``, told the update's signed weight (modes whose payload lacks the weight word sum it)."""
        self.admit(silo)

    @abstractmethod
    def exclude(self, silo: str, reason: str) -> None:
        """Leave ``silo`` out: denied, invalid or dropped; whatever it sent is discarded."""

    def check_payload(self, silo: str) -> None:  # noqa: B027 - optional step
        """Check ``silo``'s finished payload before the policy decides (homomorphic: its ciphertexts); raises ``Refusal``."""

    def decryptors(self, accepted: frozenset[str]) -> frozenset[str]:
        """The silos the unmask step waits for: the accepted ones (masked); every key holder (homomorphic)."""
        return accepted

    def cleartext(self, silo: str) -> npt.NDArray[np.generic] | None:
        """``silo``'s buffered payload when this mode holds it in the clear (plain); None when masked."""
        return None

    def admitted_updates(self) -> dict[str, npt.NDArray[np.float64]] | None:
        """Each admitted silo's payload ``[w * update..., w]`` (plain mode with a robust rule); None otherwise."""
        return None

    def update_sketches(self) -> UpdateSketches | None:
        """Sketches of the admitted updates, for their distances to the step (plain mode); None when masked."""
        return None

    def unmask_request(self, survivors: frozenset[str]) -> bytes:
        """What survivors are asked to reveal (masked mode); empty in plain mode."""
        return b""

    def unmask(self, posted: Mapping[str, bytes]) -> None:  # noqa: B027 - optional step
        """Take the survivors' revealed shares (masked mode)."""

    @abstractmethod
    def result(self) -> RoundSum:
        """The sum of admitted weighted updates and its weight word, once the round is unmasked (no copy of the sum)."""

    def coordinate_error(self) -> float:
        """How far this mode's arithmetic may move one coordinate of a correct ``result`` (floats: 0)."""
        return 0.0

    def result_problem(self) -> str | None:
        """After ``result``: why this mode's own check refuses the unmasked sum (a vote out of range); None if none."""
        return None

    def tally(self) -> npt.NDArray[np.int64] | None:
        """After ``result``: the range-checked sign-vote tally (masked vote rounds); None in every other mode."""
        return None


class BufferedSink(UpdateSink):
    """Keeps one silo's vector until it is admitted or dropped (plain modes, which read it in the clear).

    A plain payload is checked whole (finite values, its real norm and weight) before it
    counts. The coordinator bounds how many uploads are buffered at once, so memory stays a
    few models whatever the number of silos. Masked payloads are not buffered: they go into
    the sum as they arrive (``_streamed.py``).
    """

    def __init__(self, vector_length: int, dtype: str, check_finite: bool) -> None:
        self.dtype = dtype
        self.vector: npt.NDArray[np.generic] = np.empty(vector_length, dtype=np.dtype(dtype))
        self._check_finite = check_finite
        self._filled = 0
        self._digest = hashlib.sha256()

    def add(self, offset: int, dtype: str, values: npt.NDArray[np.generic]) -> None:
        end = chunk_end(self.dtype, self._filled, self.vector.size, offset, dtype, values)
        self.vector[offset:end] = values
        self._filled = end
        self._digest.update(np.ascontiguousarray(values).data)

    def finish(self) -> str:
        if self._filled != self.vector.size:
            raise StreamError(f"update ended after {self._filled} of {self.vector.size} values")
        # By slices: a boolean array of the whole payload is a quarter model (95 MiB at 100M parameters).
        if self._check_finite and not all(
            np.isfinite(self.vector[start : start + _SLICE]).all() for start in range(0, self.vector.size, _SLICE)
        ):
            raise StreamError("update holds NaN or infinite values")
        return "sha256:" + self._digest.hexdigest()


class PlainAggregation(Aggregation):
    """Sums float32 updates in the clear, in float64. For testing and baselines only.

    Each admitted update is added into one running sum and freed, keeping only its sketch
    (``UpdateSketches``: its distance to the round's step); the hub's memory is one sum and
    the buffered uploads, whatever the number of silos. Only a robust rule (median,
    trimmed mean, Multi-Krum, centered clipping), which needs every update, keeps them all
    (``keep_updates``).
    """

    def __init__(self, vector_length: int, *, keep_updates: bool = False) -> None:
        super().__init__(vector_length)
        self._sum = np.zeros(vector_length, dtype=np.float64)
        self._pending: dict[str, BufferedSink] = {}
        self._sketches = UpdateSketches(vector_length - 1)
        self._admitted: dict[str, npt.NDArray[np.float64]] | None = {} if keep_updates else None

    def open_update(self, silo: str) -> UpdateSink:
        sink = BufferedSink(self.vector_length, "float32", check_finite=True)
        self._pending[silo] = sink
        return sink

    def cleartext(self, silo: str) -> npt.NDArray[np.generic] | None:
        return self._pending[silo].vector

    def admit(self, silo: str) -> None:
        sink = self._pending.pop(silo)
        self._count(silo, sink.vector.view(np.float32))

    def _count(self, silo: str, vector: npt.NDArray[np.floating]) -> None:
        """Add a payload ``[w * update..., w]`` into the sum and sketch its update; keep it only for a robust rule."""
        np.add(self._sum, vector, out=self._sum)
        # The payload's weight was checked against the signed record count (> 0) by check_cleartext.
        self._sketches.add(silo, vector[:-1], 1.0 / float(vector[-1]))
        if self._admitted is not None:
            self._admitted[silo] = vector.astype(np.float64)

    def exclude(self, silo: str, reason: str) -> None:
        self._pending.pop(silo, None)
        if silo in self._sketches:
            raise RuntimeError(f"{silo} was already admitted; plain mode cannot take it back")

    def admitted_updates(self) -> dict[str, npt.NDArray[np.float64]] | None:
        return dict(self._admitted) if self._admitted is not None else None

    def update_sketches(self) -> UpdateSketches | None:
        return self._sketches

    def result(self) -> RoundSum:
        return FloatSum(self._sum[:-1], float(self._sum[-1]))
