"""What a silo's statistics vector holds, position by position, for each of the two passes.

Both sides derive the layout from the job's spec and the public binning alone, never from
data, so a silo and the hub agree on every position without exchanging anything.

Pass 1 (``moments``): the record count; per numeric feature the missing count and a
histogram over ``COARSE_EDGES`` (a fixed, public, symmetric-logarithmic binning from 1e-4
to 1e8 that covers any scale), and, without DP, the non-missing count, sum and sum of
squares; per categorical feature the count of each code ``0..maxCategories-1``, of other
values and of missing ones. Pass 2 (``histogram``): per numeric feature ``bins`` equal-width
bins over the range pass 1 found (below and above it counted too). With DP, one record
changes at most one position per feature by one, plus the record count: that is the
sensitivity the noise is calibrated to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_DECADES = [10.0**k for k in range(-4, 9)]
#: Public coarse bin edges: -1e8 .. -1e-4, 0, 1e-4 .. 1e8. Bin i holds values in
#: [edge[i-1], edge[i]); bin 0 holds everything below -1e8 and the last everything from 1e8.
COARSE_EDGES = np.array([-d for d in reversed(_DECADES)] + [0.0] + _DECADES)
COARSE_BINS = len(COARSE_EDGES) + 1
MOMENTS, HISTOGRAM = "moments", "histogram"


@dataclass(frozen=True)
class Layout:
    """Named blocks of one pass's vector, in order."""

    blocks: tuple[tuple[str, int], ...]

    @property
    def size(self) -> int:
        """Values in the vector."""
        return sum(size for _, size in self.blocks)

    def slices(self) -> dict[str, slice]:
        """Each block's position in the vector."""
        out, offset = {}, 0
        for name, size in self.blocks:
            out[name] = slice(offset, offset + size)
            offset += size
        return out


def moments_layout(numeric: tuple[int, ...], categorical: tuple[int, ...], codes: int, private: bool) -> Layout:
    """Pass 1's layout; ``private`` leaves out the exact sums, which DP does not release."""
    blocks: list[tuple[str, int]] = [("records", 1)]
    for column in numeric:
        blocks.append((f"missing/{column}", 1))
        blocks.append((f"coarse/{column}", COARSE_BINS))
        if not private:
            blocks += [(f"count/{column}", 1), (f"sum/{column}", 1), (f"sumsq/{column}", 1)]
    for column in categorical:
        # codes 0..codes-1, then "other", then missing.
        blocks.append((f"codes/{column}", codes + 2))
    return Layout(tuple(blocks))


def histogram_layout(numeric: tuple[int, ...], bins: int) -> Layout:
    """Pass 2's layout: below-range, ``bins`` bins, above-range, per numeric feature."""
    return Layout(tuple((f"bins/{column}", bins + 2) for column in numeric))


def sensitivity(numeric: tuple[int, ...], categorical: tuple[int, ...], phase: str) -> float:
    """L2 change of one pass's vector when one record is added or removed (DP layouts)."""
    if phase == MOMENTS:
        return math.sqrt(len(numeric) + len(categorical) + 1)
    return math.sqrt(len(numeric))


def coarse_index(values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """The coarse bin of each (non-missing) value."""
    return np.searchsorted(COARSE_EDGES, values, side="right").astype(np.int64)


def coarse_range(first: int, last: int) -> tuple[float, float]:
    """The value range covered by coarse bins ``first..last`` (the outermost edges stand for the tails)."""
    low = COARSE_EDGES[max(first - 1, 0)]
    high = COARSE_EDGES[min(last, len(COARSE_EDGES) - 1)]
    return float(low), float(high)


def fine_edges(low: float, high: float, bins: int) -> npt.NDArray[np.float64]:
    """Pass 2's equal-width bin edges over ``[low, high]``."""
    return np.linspace(low, high, bins + 1)


def fine_index(values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Slot of each value in a pass-2 block: 0 below the range, 1..bins inside, bins+1 above."""
    bins = len(edges) - 1
    index = np.searchsorted(edges, values, side="right")
    # The top edge belongs to the last bin, not above the range.
    index[values == edges[-1]] = bins
    return index.astype(np.int64)
