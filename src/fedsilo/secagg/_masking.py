"""Adding and removing masks chunk by chunk: the one loop both ends of the protocol run.

The client (``_client``) adds its self mask and its pairwise masks to each chunk of its
encoded input; the server (``_server``) removes survivors' self masks and the pairwise
masks that dropped silos left in the sum. Both walk the same keystream slices, so what one
adds the other removes exactly, mod 2^32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fedsilo.api import SiloName
from fedsilo.identity import KeystreamBuffer

from ._config import SecAggConfig


@dataclass(frozen=True)
class Mask:
    """One keystream to add to (or subtract from) a vector. ``repr`` hides the key."""

    key: bytes
    add: bool

    def __repr__(self) -> str:
        return f"Mask({'+' if self.add else '-'})"


def adds_pairwise_mask(config: SecAggConfig, owner: SiloName, peer: SiloName) -> bool:
    """Whether ``owner`` adds (rather than subtracts) the mask it shares with ``peer``.

    y_u = x_u + PRG(b_u) + sum over v > u of PRG(s_uv) - sum over v < u of PRG(s_uv), with
    silos ordered by Shamir point, so each pairwise mask cancels in the sum.
    """
    return config.x_of(owner) < config.x_of(peer)


def apply_masks(view: npt.NDArray[np.uint32], offset: int, masks: Sequence[Mask], keystream: KeystreamBuffer) -> None:
    """Add or subtract each mask's keystream slice for words ``offset .. offset + len(view) - 1``, in place."""
    for mask in masks:
        words = keystream.words(mask.key, offset, view.size)
        if mask.add:
            np.add(view, words, out=view)
        else:
            np.subtract(view, words, out=view)
