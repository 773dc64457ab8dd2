"""The wire: the gRPC protocol, tensor encoding, signed messages, and the one converter.

``fedsilo.proto`` defines every message; the generated ``fedsilo_pb2``/``fedsilo_pb2_grpc``
stubs are committed. Services import conversions from here and never build protobuf
messages themselves.
"""

from . import fedsilo_pb2 as pb
from . import fedsilo_pb2_grpc as rpc
from ._compression import RoundCompression as RoundCompression
from ._convert import blob_from_chunks as blob_from_chunks
from ._convert import blob_to_chunks as blob_to_chunks
from ._convert import frames_in as frames_in
from ._convert import frames_out as frames_out
from ._convert import join_request as join_request
from ._convert import link_ack as link_ack
from ._convert import plan_from_proto as plan_from_proto
from ._convert import plan_to_proto as plan_to_proto
from ._convert import round_ref as round_ref
from ._convert import secagg_envelope as secagg_envelope
from ._convert import share_upload as share_upload
from ._convert import share_upload_from_proto as share_upload_from_proto
from ._convert import signed_metadata as signed_metadata
from ._convert import statistics_step_from_proto as statistics_step_from_proto
from ._convert import statistics_step_to_proto as statistics_step_to_proto
from ._convert import task_request as task_request
from ._convert import update_chunk_from_proto as update_chunk_from_proto
from ._convert import update_metadata_from_proto as update_metadata_from_proto
from ._convert import update_stream as update_stream
from ._convert import verdict_from_proto as verdict_from_proto
from ._convert import verdict_to_proto as verdict_to_proto
from ._convert import wait_round_request as wait_round_request
from ._messages import MAX_LEAVE_REASON_LENGTH as MAX_LEAVE_REASON_LENGTH
from ._messages import MAX_RECORDS as MAX_RECORDS
from ._messages import DpSgdMechanism as DpSgdMechanism
from ._messages import EvaluationReport as EvaluationReport
from ._messages import GaussianMechanism as GaussianMechanism
from ._messages import GlobalModelClaim as GlobalModelClaim
from ._messages import LeaveNotice as LeaveNotice
from ._messages import ObjectName as ObjectName
from ._messages import PolicyVerdict as PolicyVerdict
from ._messages import RoundPlan as RoundPlan
from ._messages import UpdateMetadata as UpdateMetadata
from ._messages import mechanism_claim as mechanism_claim
from ._safetensors import safetensors_bytes as safetensors_bytes
from ._safetensors import safetensors_parts as safetensors_parts
from ._statistics import StatisticsClaims as StatisticsClaims
from ._statistics import StatisticsStep as StatisticsStep
from ._statistics import masked_words_digest as masked_words_digest
from ._streams import CHUNK_BYTES as CHUNK_BYTES
from ._streams import StreamError as StreamError
from ._streams import check_chunk_size as check_chunk_size
from ._streams import decode_weights as decode_weights
from ._streams import encode_weights as encode_weights
from ._strict import MessageError as MessageError
from ._strict import StrictMessage as StrictMessage
from ._strict import canonical_json as canonical_json
from ._strict import strict_json as strict_json
from ._tensors import FloatVector as FloatVector
from ._tensors import TensorLayout as TensorLayout
from ._tensors import TensorSpec as TensorSpec
from ._tensors import Weights as Weights
from ._tensors import architecture_fingerprint as architecture_fingerprint
from ._trainer_link import LINK_TOKEN_ENV as LINK_TOKEN_ENV
from ._trainer_link import LINK_TOKEN_METADATA as LINK_TOKEN_METADATA
from ._trainer_link import PARENT_PID_ENV as PARENT_PID_ENV
from ._trainer_link import StatisticsAsk as StatisticsAsk
from ._trainer_link import StatisticsTotals as StatisticsTotals
from ._trainer_link import TrainerEvaluation as TrainerEvaluation
from ._trainer_link import TrainerFitReport as TrainerFitReport
from ._trainer_link import TrainerReply as TrainerReply
from ._trainer_link import TrainerTask as TrainerTask
from ._trainer_link import decode_totals as decode_totals
from ._trainer_link import encode_totals as encode_totals
from ._trainer_link import follow_parent as follow_parent

__all__ = [
    "CHUNK_BYTES",
    "LINK_TOKEN_ENV",
    "LINK_TOKEN_METADATA",
    "MAX_LEAVE_REASON_LENGTH",
    "MAX_RECORDS",
    "PARENT_PID_ENV",
    "DpSgdMechanism",
    "EvaluationReport",
    "FloatVector",
    "GaussianMechanism",
    "GlobalModelClaim",
    "LeaveNotice",
    "MessageError",
    "ObjectName",
    "PolicyVerdict",
    "RoundCompression",
    "RoundPlan",
    "StatisticsAsk",
    "StatisticsClaims",
    "StatisticsStep",
    "StatisticsTotals",
    "StreamError",
    "StrictMessage",
    "TensorLayout",
    "TensorSpec",
    "TrainerEvaluation",
    "TrainerFitReport",
    "TrainerReply",
    "TrainerTask",
    "UpdateMetadata",
    "Weights",
    "architecture_fingerprint",
    "blob_from_chunks",
    "blob_to_chunks",
    "canonical_json",
    "check_chunk_size",
    "decode_totals",
    "decode_weights",
    "encode_totals",
    "encode_weights",
    "follow_parent",
    "frames_in",
    "frames_out",
    "join_request",
    "link_ack",
    "masked_words_digest",
    "mechanism_claim",
    "pb",
    "plan_from_proto",
    "plan_to_proto",
    "round_ref",
    "rpc",
    "safetensors_bytes",
    "safetensors_parts",
    "secagg_envelope",
    "share_upload",
    "share_upload_from_proto",
    "signed_metadata",
    "statistics_step_from_proto",
    "statistics_step_to_proto",
    "strict_json",
    "task_request",
    "update_chunk_from_proto",
    "update_metadata_from_proto",
    "update_stream",
    "verdict_from_proto",
    "verdict_to_proto",
    "wait_round_request",
]
