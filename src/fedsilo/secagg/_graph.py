"""The neighbour graph of a masked round (SecAgg+, Bell et al., CCS 2020) and the degree it needs.

With the complete graph every silo agrees a pairwise mask with, and deals Shamir shares to,
every other silo: a round costs O(n) keystreams per silo and O(n^2) shares. SecAgg+ replaces
it with a sparse graph of degree k = O(log n): masks and shares only between neighbours, the
threshold counted inside each neighbourhood. ``NeighbourGraph`` is the graph (a Harary graph
H(k, n) over a permutation of the silos drawn from the round's public seed, so every silo and
the hub derive the same one with no message); ``sparse_parameters`` computes the smallest
even degree and its threshold for which the bounds below hold. ``SecAggConfig`` holds the
graph of a round; the API layer and the coordinator call ``sparse_parameters``.

The bounds (the analysis of the Harary-graph instantiation of SecAgg+, with ``sigma`` bits of
security split over its two bad events and ``eta`` bits of correctness), for n silos of which
at most ``floor(gamma n)`` collude with the hub and at most ``floor(delta n)`` drop out:

1. *The honest survivors stay connected*: removing a set of silos disconnects H(k, n) only if
   it holds k/2 ring-consecutive silos in two places; a union bound over the
   ``n (n - k - 1) / 2`` pairs of gaps with the chance ``C(B, k) / C(n, k)`` that k given silos
   all lie in a random set of B = bad silos gives the probability, which must stay below
   ``2^-(sigma + 1)``. Connected honest survivors mean the masks of any honest silo cancel
   only in the sum of all of them, so the hub learns nothing but that sum.
2. *No honest silo's secrets are reconstructable by the colluders*: the colluding neighbours
   of one silo are hypergeometric (k draws from n, ``floor(gamma n)`` marked); ``c_max`` is the
   smallest count they exceed with probability below ``2^-(sigma + 1) / n`` (union over
   silos). A curious hub needs t > c_max; a hub that may also lie about who dropped out (so
   that honest neighbours reveal both share kinds between them) needs 2t > k + c_max.
3. *Correctness*: each silo's surviving neighbours are hypergeometric with
   ``ceil((1 - delta) n)`` marked; fewer than t survive with probability below
   ``2^-eta / n``, else the round aborts (an abort leaks nothing: it is a lost round).

Every tail is computed exactly in integers (``math.comb``), not from floating-point logs.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any, Final

from fedsilo.api import FederatedJobSpec, HubModel, NeighbourGraphKind

#: Security and correctness parameters: failure probabilities 2^-SECURITY_BITS and 2^-CORRECTNESS_BITS.
SECURITY_BITS: Final = 40
CORRECTNESS_BITS: Final = 20
# Floor and ceiling of fractions such as 0.3 * 10 without their binary representation tipping them.
_ROUNDING: Final = 1e-9


@dataclass(frozen=True)
class GraphParameters:
    """A degree and threshold for n silos, with the adversary they were computed against."""

    silos: int
    degree: int
    threshold: int
    colluding_fraction: float
    dropout_fraction: float
    hub: HubModel
    security_bits: int
    correctness_bits: int

    @property
    def colluding_silos(self) -> int:
        """Most silos that may collude with the hub under this bound."""
        return _at_most(self.colluding_fraction, self.silos)

    @property
    def dropped_silos(self) -> int:
        """Most silos that may drop out of a round under this bound."""
        return _at_most(self.dropout_fraction, self.silos)


def _at_most(fraction: float, n: int) -> int:
    return math.floor(fraction * n + _ROUNDING)


def _at_least(fraction: float, n: int) -> int:
    return math.ceil(fraction * n - _ROUNDING)


def _hypergeometric_weights(population: int, marked: int, draws: int) -> list[int]:
    """``C(marked, i) * C(population - marked, draws - i)`` for i = 0..draws; they sum to ``C(population, draws)``."""
    return [math.comb(marked, i) * math.comb(population - marked, draws - i) for i in range(draws + 1)]


def _disconnection_bounded(n: int, degree: int, bad: int, security_bits: int) -> bool:
    """Whether the union bound of point 1 is below ``2^-(security_bits + 1)`` (exact integers)."""
    if degree > bad:
        return True
    # n (n - k - 1) / 2 * C(bad, k) / C(n, k) < 2^-(sigma + 1)  <=>  n (n - k - 1) C(bad, k) 2^sigma < C(n, k)
    return n * (n - degree - 1) * math.comb(bad, degree) * (1 << security_bits) < math.comb(n, degree)


def _threshold_for(
    n: int, degree: int, colluding: int, surviving: int, hub: HubModel, security_bits: int, correctness_bits: int
) -> int | None:
    """The smallest threshold satisfying points 2 and 3 for this degree, or None if none does."""
    total = math.comb(n, degree)
    # Point 2: c_max = smallest c with n 2^(sigma+1) P[X > c] < 1, X colluding neighbours of one silo.
    weights = _hypergeometric_weights(n, colluding, degree)
    tail, c_max = 0, degree
    for c in range(degree, -1, -1):
        tail += weights[c]  # P[X >= c] * C(n, k)
        if tail * n * (1 << (security_bits + 1)) >= total:
            break
        c_max = c - 1
    threshold = c_max + 1 if hub is HubModel.CURIOUS else (degree + c_max) // 2 + 1
    threshold = max(threshold, 2)
    if threshold > degree:
        return None
    # Point 3: P[S <= t - 1] < 2^-eta / n, S surviving neighbours of one silo.
    lower = sum(_hypergeometric_weights(n, surviving, degree)[:threshold])
    if lower * n * (1 << correctness_bits) >= total:
        return None
    return threshold


@cache
def sparse_parameters(
    n: int,
    colluding_fraction: float,
    dropout_fraction: float,
    hub: HubModel = HubModel.CURIOUS,
    security_bits: int = SECURITY_BITS,
    correctness_bits: int = CORRECTNESS_BITS,
) -> GraphParameters | None:
    """The smallest even degree below n - 1 (and its threshold) meeting the bounds, or None.

    None means no sparse graph is both safe and live for these fractions: the round keeps the
    complete graph (as small jobs do).
    """
    if n < 2:
        raise ValueError(f"a graph needs at least 2 silos, got {n}")
    for name, value in (("colluding fraction", colluding_fraction), ("dropout fraction", dropout_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"the {name} must be in [0, 1), got {value}")
    if security_bits < 1 or correctness_bits < 1:
        raise ValueError("security and correctness bits must be positive")
    colluding = _at_most(colluding_fraction, n)
    bad = colluding + _at_most(dropout_fraction, n)
    surviving = _at_least(1.0 - dropout_fraction, n)
    for degree in range(2, n - 1, 2):
        if not _disconnection_bounded(n, degree, bad, security_bits):
            continue
        threshold = _threshold_for(n, degree, colluding, surviving, hub, security_bits, correctness_bits)
        if threshold is not None:
            return GraphParameters(
                n, degree, threshold, colluding_fraction, dropout_fraction, hub, security_bits, correctness_bits
            )
    return None


@dataclass(frozen=True)
class GraphChoice:
    """The graph a job's masked rounds use, its threshold, and why (for the audit log and the report)."""

    degree: int | None
    threshold: int
    reason: str
    parameters: GraphParameters | None = None

    def record(self, job: str, round_number: int, silos: int) -> dict[str, Any]:
        """The round's graph as recorded: kind, degree, threshold, seed and the bound's parameters."""
        document: dict[str, Any] = {
            "graph": "complete" if self.degree is None else "sparse",
            "degree": silos - 1 if self.degree is None else self.degree,
            "threshold": self.threshold,
            "seed": graph_seed(job, round_number).hex() if self.degree is not None else "",
            "reason": self.reason,
        }
        if self.parameters is not None:
            p = self.parameters
            document.update(
                colluding_fraction=p.colluding_fraction,
                dropout_fraction=p.dropout_fraction,
                hub=p.hub.value,
                security_bits=p.security_bits,
                correctness_bits=p.correctness_bits,
            )
        return document


def choose_graph(spec: FederatedJobSpec) -> GraphChoice:
    """The neighbour graph of a masked job: the hub and every silo compute it from the spec alone."""
    neighbours = spec.aggregation.neighbours
    if neighbours is None or neighbours.graph is NeighbourGraphKind.COMPLETE:
        return GraphChoice(None, spec.secagg_threshold(), "the complete graph, as the job asks")
    n = len(spec.silos)
    found = sparse_parameters(n, neighbours.colluding_fraction, neighbours.dropout_fraction, neighbours.hub)
    if found is not None and min(found.colluding_silos, found.dropped_silos) < 1:
        # A bound for no colluding silo or no dropout is weaker than the complete graph's majority
        # threshold, which at such small n costs little: keep the stronger guarantee.
        return GraphChoice(
            None,
            spec.secagg_threshold(),
            f"the complete graph: at {n} silos the sparse bound would cover {found.colluding_silos} colluding "
            f"and {found.dropped_silos} dropping silos, less than the complete graph's threshold does",
        )
    if found is None:
        return GraphChoice(
            None,
            spec.secagg_threshold(),
            f"the complete graph: no even degree below {n - 1} keeps the bound for {n} silos "
            f"(colluding {neighbours.colluding_fraction}, dropping {neighbours.dropout_fraction})",
        )
    return GraphChoice(
        found.degree,
        found.threshold,
        f"sparse degree {found.degree} of {n - 1} keeps the bound for {n} silos with at most "
        f"{found.colluding_silos} colluding and {found.dropped_silos} dropping (2^-{found.security_bits})",
        found,
    )


def graph_seed(job: str, round_number: int) -> bytes:
    """The round's public graph seed: a function of the job and round only, so no party picks it per round."""
    return hashlib.sha256(f"fedsilo.secagg.graph/v1|{job}|{round_number}".encode()).digest()


class _SeededStream:
    """Uniform integers from SHA-256 in counter mode: the same on every platform and Python version."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0

    def below(self, bound: int) -> int:
        """A uniform integer in [0, bound), by rejection so there is no modulo bias."""
        limit = (1 << 64) - (1 << 64) % bound
        while True:
            block = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
            value = int.from_bytes(block[:8], "big")
            if value < limit:
                return value % bound


@dataclass(frozen=True)
class NeighbourGraph:
    """Who masks with and deals shares to whom in one round.

    ``degree`` None is the complete graph, in which every silo's share group is every silo
    (itself included, as in the original protocol). Otherwise it is the Harary graph H(k, n):
    the silos are placed on a ring in the order of a permutation drawn from ``seed``, and each
    is joined to the k/2 silos on either side; a silo's share group is its k neighbours.
    """

    silos: tuple[str, ...]
    degree: int | None = None
    seed: bytes = b""

    def __post_init__(self) -> None:
        if len(set(self.silos)) != len(self.silos):
            raise ValueError("a graph's silos must be distinct")
        if self.degree is not None:
            if self.degree < 2 or self.degree % 2 or self.degree >= len(self.silos) - 1:
                raise ValueError(
                    f"a sparse graph's degree must be even, at least 2 and below {len(self.silos) - 1} "
                    f"(the complete graph's degree); got {self.degree}"
                )
            if len(self.seed) != 32:
                raise ValueError("a sparse graph needs its round's 32-byte seed")

    @property
    def complete(self) -> bool:
        """Whether every silo is every silo's neighbour."""
        return self.degree is None

    @cached_property
    def _groups(self) -> dict[str, frozenset[str]]:
        if self.degree is None:
            everyone = frozenset(self.silos)
            return {silo: everyone for silo in self.silos}
        ring = list(self.silos)
        stream = _SeededStream(self.seed)
        for i in range(len(ring) - 1, 0, -1):
            j = stream.below(i + 1)
            ring[i], ring[j] = ring[j], ring[i]
        n, half = len(ring), self.degree // 2
        return {silo: frozenset(ring[(p + d) % n] for d in range(-half, half + 1) if d) for p, silo in enumerate(ring)}

    def share_group(self, silo: str) -> frozenset[str]:
        """The silos that hold ``silo``'s shares; symmetric, so also whose shares ``silo`` holds."""
        try:
            return self._groups[silo]
        except KeyError:
            raise ValueError(f"{silo} is not a silo of this graph") from None

    def peers(self, silo: str) -> frozenset[str]:
        """The silos ``silo`` agrees a pairwise mask with."""
        return self.share_group(silo) - {silo}

    def edges(self) -> int:
        """Number of pairwise masks in the round."""
        return sum(len(self.peers(s)) for s in self.silos) // 2

    def describe(self) -> dict[str, object]:
        """What the audit log and the report record about the round's graph."""
        return {
            "graph": "complete" if self.degree is None else "sparse",
            "degree": len(self.silos) - 1 if self.degree is None else self.degree,
            "seed": self.seed.hex(),
        }
