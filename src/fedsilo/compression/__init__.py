"""Compression of updates: stochastic quantization, packing, sign votes, shared-subset and top-k sparsification.

Pure functions over numpy, used by the sidecar (compress before masking, after clipping and
noise) and the aggregator (unpack, dequantize the masked sum, decode plain payloads); what a
round uses is one ``fedsilo.protocol.RoundCompression`` the hub publishes. See
docs/compression.md.
"""

from ._codec import Compressed as Compressed
from ._codec import coordinates as coordinates
from ._codec import masked_levels as masked_levels
from ._codec import masked_payload_size as masked_payload_size
from ._codec import masked_total as masked_total
from ._codec import plain_payload as plain_payload
from ._codec import plain_payload_size as plain_payload_size
from ._codec import read_plain_payload as read_plain_payload
from ._codec import words_sent as words_sent
from ._feedback import ErrorFeedback as ErrorFeedback
from ._packing import low_bits as low_bits
from ._packing import pack_words as pack_words
from ._packing import packed_size as packed_size
from ._packing import unpack_words as unpack_words
from ._quantize import MAX_BITS as MAX_BITS
from ._quantize import MAX_WORD_BITS as MAX_WORD_BITS
from ._quantize import MIN_BITS as MIN_BITS
from ._quantize import CompressionError as CompressionError
from ._quantize import dequantize as dequantize
from ._quantize import dequantize_sum as dequantize_sum
from ._quantize import headroom_bits as headroom_bits
from ._quantize import max_silos as max_silos
from ._quantize import quantize as quantize
from ._quantize import step as step
from ._quantize import sum_word_bits as sum_word_bits
from ._subset import subset_indices as subset_indices
from ._subset import subset_schedule as subset_schedule
from ._subset import subset_size as subset_size
from ._subset import top_k_indices as top_k_indices
from ._votes import VOTE_BITS as VOTE_BITS
from ._votes import VoteRangeError as VoteRangeError
from ._votes import pack_votes as pack_votes
from ._votes import round_vote_levels as round_vote_levels
from ._votes import unpack_votes as unpack_votes
from ._votes import vote_levels as vote_levels
from ._votes import vote_settings as vote_settings
from ._votes import vote_tally as vote_tally
from ._votes import vote_word_bits as vote_word_bits

__all__ = [
    "MAX_BITS",
    "MAX_WORD_BITS",
    "MIN_BITS",
    "VOTE_BITS",
    "Compressed",
    "CompressionError",
    "ErrorFeedback",
    "VoteRangeError",
    "coordinates",
    "dequantize",
    "dequantize_sum",
    "headroom_bits",
    "low_bits",
    "masked_levels",
    "masked_payload_size",
    "masked_total",
    "max_silos",
    "pack_votes",
    "pack_words",
    "packed_size",
    "plain_payload",
    "plain_payload_size",
    "quantize",
    "read_plain_payload",
    "round_vote_levels",
    "step",
    "subset_indices",
    "subset_schedule",
    "subset_size",
    "sum_word_bits",
    "top_k_indices",
    "unpack_votes",
    "unpack_words",
    "vote_levels",
    "vote_settings",
    "vote_tally",
    "vote_word_bits",
]
