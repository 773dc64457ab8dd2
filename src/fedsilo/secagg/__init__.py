"""Secure aggregation: pairwise-masked sums with dropout recovery (Bonawitz et al., CCS 2017).

Masks and shares run over the complete graph of silos, or over a sparse neighbour graph of
logarithmic degree (SecAgg+, Bell et al., CCS 2020) whose degree ``sparse_parameters`` computes.

Sans-IO state machines for the silo (``SecAggClient``) and the hub (``SecAggServer``);
the sidecar and the aggregator carry their messages over gRPC as opaque bytes.
"""

from ._client import SecAggClient as SecAggClient
from ._config import CHUNK_WORDS as CHUNK_WORDS
from ._config import SecAggConfig as SecAggConfig
from ._fixed_point import FixedPointError as FixedPointError
from ._fixed_point import choose_fractional_bits as choose_fractional_bits
from ._fixed_point import decode_mean as decode_mean
from ._fixed_point import decode_sum as decode_sum
from ._fixed_point import decoded_norm as decoded_norm
from ._fixed_point import encode as encode
from ._graph import GraphChoice as GraphChoice
from ._graph import GraphParameters as GraphParameters
from ._graph import NeighbourGraph as NeighbourGraph
from ._graph import choose_graph as choose_graph
from ._graph import graph_seed as graph_seed
from ._graph import sparse_parameters as sparse_parameters
from ._masks import SLICE_WORDS as SLICE_WORDS
from ._masks import MaskStreams as MaskStreams
from ._masks import apply_masks as apply_masks
from ._messages import SecAggAbort as SecAggAbort
from ._messages import SecAggError as SecAggError
from ._server import SecAggServer as SecAggServer
from ._shamir import ShamirError as ShamirError
from ._shamir import Share as Share
from ._shamir import reconstruct as reconstruct
from ._shamir import split as split

__all__ = [
    "CHUNK_WORDS",
    "SLICE_WORDS",
    "FixedPointError",
    "GraphChoice",
    "GraphParameters",
    "MaskStreams",
    "NeighbourGraph",
    "SecAggAbort",
    "SecAggClient",
    "SecAggConfig",
    "SecAggError",
    "SecAggServer",
    "ShamirError",
    "Share",
    "apply_masks",
    "choose_fractional_bits",
    "choose_graph",
    "decode_mean",
    "decode_sum",
    "decoded_norm",
    "encode",
    "graph_seed",
    "reconstruct",
    "sparse_parameters",
    "split",
]
