"""Masked payloads added into the round's sum as their chunks arrive, and taken out exactly if refused.

``MaskedAggregation`` (and its compressed and vote forms) opens one ``StreamedSink`` per upload
through ``StreamedInputs``. Each chunk, checked for its place and size, is added into the one
running uint32 sum of the round's ``SecAggServer`` (``add_words``) as it arrives, so the hub
holds no silo's payload: its memory beyond the sum is one chunk per upload in flight, whatever
the number of silos or the model's size.

A payload counts only when admission admits it, after its signed digest, its sizes and the
policy were checked on the whole of it. Until then its words are in the sum but the silo is not
counted; if it is refused, cut off or closed out instead, ``withdraw`` subtracts exactly the
words it added (mod 2^32), read back from the bytes the sink wrote, as they arrived, to an
anonymous file (``tempfile.TemporaryFile``: no name, mode 0600, gone when closed or when the
process ends) in the hub's state directory. The file is read back only for a refused payload,
and its digest is checked against the one taken over the wire before anything is subtracted;
if it no longer matches (or cannot be read), the round fails when it would unmask
(``RoundFailed``, retried with fresh masks) rather than hand out a sum the refused payload moved.
docs/big-models.md says why this design (and not a staged copy per upload) was chosen.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from fedsilo.compression import packed_size as packed_bytes
from fedsilo.compression import unpack_words
from fedsilo.protocol import CHUNK_BYTES, StreamError
from fedsilo.secagg import SecAggServer

from ._aggregation import UpdateSink, chunk_end
from ._contracts import RoundFailed


class PackedWords:
    """Words of ``word_bits`` bits packed end to end (32: plain little-endian uint32), read from pieces of any size.

    Eight words fill ``word_bits`` whole bytes, so every whole group of eight that has arrived
    is unpacked at once and the few bytes of a group cut by a chunk's end wait for the next
    chunk; ``finish`` unpacks the last, partial group. The words come out the same whatever
    the pieces' sizes.
    """

    def __init__(self, word_bits: int, count: int) -> None:
        self._bits = word_bits
        self._count = count
        self._done = 0
        self._carry: npt.NDArray[np.uint8] = np.empty(0, dtype=np.uint8)

    def feed(self, data: npt.NDArray[np.uint8]) -> tuple[int, npt.NDArray[np.uint32]]:
        """The next whole groups' words and the offset of the first; the cut group's bytes are kept."""
        if self._carry.size:
            data = np.concatenate((self._carry, data))
        groups = min(data.size // self._bits, (self._count - self._done) // 8)
        taken = groups * self._bits
        # Whole uint32 words are read in place (the sum only reads them); narrower ones are unpacked.
        words = data[:taken].view("<u4") if self._bits == 32 else unpack_words(data[:taken], self._bits, groups * 8)
        self._carry = data[taken:].copy()
        offset, self._done = self._done, self._done + words.size
        return offset, words

    def finish(self) -> tuple[int, npt.NDArray[np.uint32]]:
        """The words of the last, partial group (the payload's size was checked by the sink)."""
        remaining = self._count - self._done
        words = unpack_words(self._carry, self._bits, remaining)
        self._carry = np.empty(0, dtype=np.uint8)
        offset, self._done = self._done, self._count
        return offset, words


class StreamedSink(UpdateSink):
    """One upload: each chunk into the sum at once (under the round's lock) and onto the spill file.

    Only ``StreamedInputs`` creates one.
    """

    def __init__(
        self,
        inputs: StreamedInputs,
        silo: str,
        length: int,
        dtype: str,
        word_bits: int,
        words: int,
        spill_dir: Path | None,
    ) -> None:
        self._inputs = inputs
        self.silo = silo
        self.dtype = dtype
        self._length = length
        self._word_bits = word_bits
        self._words = words
        self._spill_dir = spill_dir
        self._reader = PackedWords(word_bits, words)
        self._spill: IO[bytes] | None = None
        # Bytes of the spill file that are in the sum (a failed write may leave a torn tail after them).
        self._kept = 0
        self._filled = 0
        self._digest = hashlib.sha256()
        self.finished = False
        self.withdrawn = False

    def add(self, offset: int, dtype: str, values: npt.NDArray[np.generic]) -> None:
        """Check the chunk's dtype, size and place, then add its words into the sum and keep its bytes."""
        end = chunk_end(self.dtype, self._filled, self._length, offset, dtype, values)
        data = np.ascontiguousarray(values).reshape(-1).view(np.uint8)
        with self._inputs.lock:
            self._require_open()
            try:
                if self._spill is None:
                    self._spill = tempfile.TemporaryFile(dir=self._spill_dir)  # noqa: SIM115 - closed by release/withdraw
                self._spill.seek(self._kept)
                self._spill.write(data.data)
            except OSError as error:
                # Nothing of this chunk is in the sum yet: the upload ends with what came before it.
                raise StreamError(
                    f"the hub cannot keep this upload's chunks to take them back if refused: {error}"
                ) from None
            self._kept += data.size
            self._inputs.server.add_words(*self._reader.feed(data))
            self._digest.update(data.data)
            self._filled = end

    def finish(self) -> str:
        """Add the last partial group of words; the ``sha256:`` digest of every byte received."""
        if self._filled != self._length:
            raise StreamError(f"update ended after {self._filled} of {self._length} values")
        with self._inputs.lock:
            self._require_open()
            self._inputs.server.add_words(*self._reader.finish())
            self.finished = True
            return "sha256:" + self._digest.hexdigest()

    def _require_open(self) -> None:
        if self.withdrawn:
            raise StreamError("this silo's update was left out of the round (refused or closed out); the upload ends")

    def withdraw(self) -> None:
        """Subtract every word this upload added (lock held); the spill must still hash to what arrived."""
        if self.withdrawn:
            return
        self.withdrawn = True
        if self._spill is None:
            return
        try:
            spilled = hashlib.sha256()
            for piece in self._read_spill():
                spilled.update(piece.data)
            if spilled.digest() != self._digest.digest():
                # The hub's own file changed under it (disk, another process): nothing is subtracted,
                # and the round cannot be unmasked.
                self._inputs.lose(f"{self.silo}'s kept chunks no longer hash to what arrived")
                return
            reader = PackedWords(self._word_bits, self._words)
            for piece in self._read_spill():
                offset, words = reader.feed(piece)
                self._inputs.server.add_words(offset, words, -1)
            if self.finished:
                offset, words = reader.finish()
                self._inputs.server.add_words(offset, words, -1)
        except OSError as error:
            self._inputs.lose(f"{self.silo}'s kept chunks cannot be read back: {error}")
        finally:
            self.release()

    def _read_spill(self) -> _SpillPieces:
        assert self._spill is not None, "read back only when something was kept"
        return _SpillPieces(self._spill, self._kept)

    def release(self) -> None:
        """Drop the spill file (the payload counted, or was taken out)."""
        if self._spill is not None:
            self._spill.close()
            self._spill = None


class _SpillPieces:
    """A spill file's first ``size`` bytes, read from its start in pieces of at most one chunk."""

    def __init__(self, spill: IO[bytes], size: int) -> None:
        self._spill = spill
        self._left = size

    def __iter__(self) -> _SpillPieces:
        self._spill.seek(0)
        return self

    def __next__(self) -> npt.NDArray[np.uint8]:
        piece = self._spill.read(min(CHUNK_BYTES, self._left)) if self._left else b""
        if not piece:
            raise StopIteration
        self._left -= len(piece)
        return np.frombuffer(piece, dtype=np.uint8)


class StreamedInputs:
    """A round's uploads in flight over one ``SecAggServer``: opened, counted on admission, or withdrawn.

    One lock guards the sum: chunks of concurrent uploads, a withdrawal and a count never
    interleave inside one ``add_words``. A silo withdrawn once (refused, or closed out when the
    input step ended) stays out: a later or still-running upload of it adds nothing more, so the
    sum the hub unmasks holds exactly the counted silos' inputs.
    """

    def __init__(self, server: SecAggServer, spill_dir: Path | None) -> None:
        self.server = server
        self.lock = threading.Lock()
        self._spill_dir = spill_dir
        self._open: dict[str, StreamedSink] = {}
        self._out: set[str] = set()
        # Why a refused upload could not be taken back out of the sum, if one could not.
        self._lost: str | None = None

    def lose(self, reason: str) -> None:
        """A withdrawal failed (lock held): the sum holds words no counted silo sent."""
        self._lost = self._lost or reason

    def require_whole(self) -> None:
        """Raise ``RoundFailed`` if a refused upload stayed in the sum.

        Unmasking such a sum would hand every silo a model moved by a refused payload; the round
        is retried instead, with fresh masks.
        """
        with self.lock:
            if self._lost is not None:
                raise RoundFailed(f"a refused upload could not be taken back out of the round's sum: {self._lost}")

    def open(self, silo: str, length: int, dtype: str, word_bits: int) -> StreamedSink:
        """A sink for ``silo``'s payload of ``length`` ``dtype`` values holding the sum's words at ``word_bits``."""
        if packed_bytes(self.server.config.vector_length, word_bits) != length * np.dtype(dtype).itemsize:
            raise ValueError("the payload's size is not the round's words at this width")
        sink = StreamedSink(self, silo, length, dtype, word_bits, self.server.config.vector_length, self._spill_dir)
        with self.lock:
            if silo in self._out:
                sink.withdrawn = True
            earlier = self._open.pop(silo, None)
            if earlier is not None:
                earlier.withdraw()
            self._open[silo] = sink
        return sink

    def count(self, silo: str) -> None:
        """Admission admitted ``silo``: its finished payload, already in the sum, now counts."""
        with self.lock:
            sink = self._open.pop(silo)
            if not sink.finished or sink.withdrawn:
                raise RuntimeError(f"{silo}'s payload did not arrive whole; admission admits only finished payloads")
            self.server.count_input(silo)
            sink.release()

    def withdraw(self, silo: str) -> None:
        """``silo`` is out of the round: whatever its upload added is subtracted, and it adds nothing more."""
        with self.lock:
            self._out.add(silo)
            sink = self._open.pop(silo, None)
            if sink is not None:
                sink.withdraw()
