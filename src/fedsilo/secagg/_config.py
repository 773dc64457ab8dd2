"""What both sides of one round's secure aggregation agree on, and the derivations they share."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from fedsilo.identity import derive_key

from ._graph import NeighbourGraph, graph_seed
from ._masks import SLICE_WORDS

# Words per message of a streamed masked payload (1 MiB of uint32).
CHUNK_WORDS = 1 << 18


@dataclass(frozen=True)
class SecAggConfig:
    """One round of the protocol: who takes part, the threshold, the vector and its encoding."""

    job: str
    round: int
    silos: tuple[str, ...]
    threshold: int
    vector_length: int
    fractional_bits: int
    clip_range: float
    # Words per slice of the mask expansion (``apply_masks``); any size gives the same masks.
    chunk_words: int = SLICE_WORDS
    # The sparse neighbour graph's degree (SecAgg+); None: the complete graph, every silo a neighbour.
    degree: int | None = None

    def __post_init__(self) -> None:
        _ = self.graph  # draws the graph now, so a bad degree fails here and not mid-round
        group = len(self.silos) if self.degree is None else self.degree
        if not 2 <= self.threshold <= group:
            raise ValueError(f"threshold {self.threshold} must be between 2 and {group} (a share group's size)")
        if self.chunk_words < 1:
            raise ValueError("chunk_words must be positive")

    @cached_property
    def graph(self) -> NeighbourGraph:
        """The round's neighbour graph, drawn from the public seed of this job and round."""
        if self.degree is None:
            return NeighbourGraph(self.silos)
        return NeighbourGraph(self.silos, self.degree, graph_seed(self.job, self.round))

    def x_of(self, silo: str) -> int:
        """The Shamir point of ``silo``: its 1-based position in the job's silo list."""
        return self.silos.index(silo) + 1

    def context(self, purpose: str, *names: str) -> bytes:
        """Binding of a derived key to this job, round and purpose (and the silos involved)."""
        return "|".join(("fedsilo.secagg/v1", purpose, self.job, str(self.round), *names)).encode()

    def pairwise_key(self, secret: bytes, a: str, b: str) -> bytes:
        """The mask key two silos share, the same from either side."""
        low, high = sorted((a, b))
        return derive_key(secret, self.context("pairwise-mask", low, high))

    def share_key(self, secret: bytes, a: str, b: str) -> bytes:
        """The AES-GCM key for share ciphertexts between two silos."""
        low, high = sorted((a, b))
        return derive_key(secret, self.context("share-encryption", low, high))
