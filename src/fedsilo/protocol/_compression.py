"""How one round's updates are compressed: published in the round plan, signed in each update.

The hub fixes one ``RoundCompression`` per round (the level chosen for all silos, the
shared subset's seed and window) and publishes it with the plan; each silo compresses with
exactly it and signs it back in its ``UpdateMetadata``, so the hub can refuse an update
compressed otherwise (another level, other coordinates) before reading its payload.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

from ._strict import StrictMessage

#: Largest subset seed: 56 bits, what ``fedsilo.compression.subset_schedule`` draws.
MAX_SUBSET_SEED: Final = (1 << 56) - 1
_COORDINATES = Annotated[int, Field(ge=0, le=2**31 - 1)]


class RoundCompression(StrictMessage):
    """One round's compression settings (``fedsilo.compression`` reads them).

    ``bits`` 0 sends float32 values (plain mode only); ``word_bits`` is the width of one word
    on the wire (masked mode: ``bits`` plus the headroom the sum of the round's silos
    needs). ``subset_size`` 0 sends every coordinate; ``top_k`` 0 keeps all (plain mode only).
    """

    bits: Annotated[int, Field(ge=0, le=24)]
    word_bits: Annotated[int, Field(ge=0, le=32)]
    value_range: Annotated[float, Field(gt=0.0, le=1e6)]
    weight_scale: Annotated[int, Field(ge=1, le=2**31 - 1)]
    subset_seed: Annotated[int, Field(ge=0, le=MAX_SUBSET_SEED)] = 0
    subset_offset: _COORDINATES = 0
    subset_size: _COORDINATES = 0
    top_k: _COORDINATES = 0
