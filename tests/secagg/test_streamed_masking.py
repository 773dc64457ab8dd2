"""A silo masks its update slice by slice: the same words as masking it whole, in bounded memory.

The silo encodes and masks each slice of its update straight into the one vector it sends
(``SecAggClient.masked_input``), and a compressed round's levels are masked and packed one
chunk at a time (``masked_packed``), so a large model costs the silo one more vector, not
several. These tests pin that the streamed words are exactly the whole-array words, and
bound (by allocation, not by time) what the streamed step holds beside its output.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import numpy.typing as npt
import pytest

from fedsilo.compression import low_bits, pack_words
from fedsilo.secagg import CHUNK_WORDS, SLICE_WORDS
from fedsilo.secagg._fixed_point import ENCODE_SLICE
from fedsilo.sidecar._masking import masked_packed

from .conftest import Round, make_round

MIB = 1 << 20


def whole_array_encoding(values: npt.NDArray[np.floating], weight: int, clip_range: float, bits: int) -> np.ndarray:
    """Fixed point over the whole vector at once, as the silo computed it before it streamed."""
    scaled = np.clip(values.astype(np.float32), -clip_range, clip_range).astype(np.float32)
    scaled *= np.float32(float(weight) * 2.0**bits)
    np.rint(scaled, out=scaled)
    out = np.empty(values.size + 1, dtype=np.uint32)
    np.copyto(out[:-1].view(np.int32), scaled, casting="unsafe")
    out[-1] = weight
    return out


def keyed_round(length: int, chunk_words: int = SLICE_WORDS) -> Round:
    """Three silos that have advertised and shared keys: ready to mask ``length`` words."""
    r = make_round(("a", "b", "c"), threshold=2, length=length, chunk_words=chunk_words)
    r.share(r.advertise(["a", "b", "c"]))
    return r


@pytest.mark.parametrize(
    ("length", "chunk_words"),
    [(301, 64), (2 * ENCODE_SLICE + 1, 1000), (ENCODE_SLICE, 7), (3 * ENCODE_SLICE + 17, SLICE_WORDS)],
)
def test_the_streamed_masked_input_is_the_whole_array_masking_bit_for_bit(length: int, chunk_words: int) -> None:
    r = keyed_round(length, chunk_words)
    rng = np.random.default_rng(length)
    # Past the clip range on purpose: clipping is part of what must match.
    values = rng.uniform(-6.0, 6.0, length - 1).astype(np.float32)
    for silo in ("a", "b", "c"):
        client = r.clients[silo]
        streamed = client.masked_input(values, 37)
        whole = client.mask_words(whole_array_encoding(values, 37, 4.0, 16))
        np.testing.assert_array_equal(streamed, whole)


def test_streamed_masked_inputs_still_sum_to_the_plain_fixed_point_sum() -> None:
    length = 2 * ENCODE_SLICE + 3
    r = keyed_round(length, 1000)
    rng = np.random.default_rng(1)
    inputs = {s: rng.uniform(-4.0, 4.0, length - 1) for s in ("a", "b", "c")}
    for silo, values in inputs.items():
        r.server.add_input(silo, r.clients[silo].masked_input(values, 5))
    r.unmask(["a", "b", "c"])
    expected = sum((whole_array_encoding(v, 5, 4.0, 16) for v in inputs.values()), np.zeros(length, np.uint32))
    np.testing.assert_array_equal(r.server.raw_result(), expected)


@pytest.mark.parametrize("word_bits", [5, 8, 12, 16, 32])
def test_chunked_mask_and_pack_is_the_whole_array_packing_bit_for_bit(word_bits: int) -> None:
    length = CHUNK_WORDS + 13  # one whole chunk and a ragged one
    r = keyed_round(length)
    client = r.clients["b"]
    levels = np.random.default_rng(word_bits).integers(0, 1 << min(word_bits, 16), length, dtype=np.uint32)
    kept = levels.copy()
    streamed = masked_packed(levels, client.mask_streams(), word_bits)
    whole = pack_words(client.mask_words(levels.copy()) & low_bits(word_bits), word_bits)
    np.testing.assert_array_equal(streamed, whole)
    np.testing.assert_array_equal(levels, kept)  # the caller's levels are left as they were


def peak_allocated(call: object) -> int:
    """Bytes the call allocated at its peak, beyond what was allocated when it started."""
    assert callable(call)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def test_masking_a_large_update_holds_its_output_and_a_few_slices_only() -> None:
    length = 4 * MIB + 1  # 16 MiB of words: whole-array temporaries would show at once
    r = keyed_round(length)
    values = np.random.default_rng(2).uniform(-1.0, 1.0, length - 1).astype(np.float32)
    client = r.clients["a"]
    output = 4 * length
    peak = peak_allocated(lambda: client.masked_input(values, 9))
    # The output, one float32 slice of the encoding and the keystream scratch, with room for
    # numpy's and the cipher's small allocations; a whole-array float32 copy alone is 16 MiB more.
    assert peak < output + 8 * (4 * ENCODE_SLICE + 4 * SLICE_WORDS)


def test_masking_and_packing_large_levels_holds_the_packed_bytes_and_a_few_chunks_only() -> None:
    length = 8 * MIB  # 32 MiB of levels: a whole masked copy of them would be 32 MiB more
    r = keyed_round(length)
    levels = np.random.default_rng(3).integers(0, 256, length, dtype=np.uint32)
    client = r.clients["c"]
    packed = (length * 12 + 7) // 8
    peak = peak_allocated(lambda: masked_packed(levels, client.mask_streams(), 12))
    # The packed bytes plus one chunk's copy (1 MiB) and the bit-level packing's temporaries
    # (``pack_words`` expands a 64 Ki-word slice to one uint32 per bit: 3 MiB, twice, at 12 bits).
    assert peak < packed + 10 * 4 * CHUNK_WORDS
