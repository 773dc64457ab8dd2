"""The one module that converts between protobuf messages and fedsilo's domain objects.

Services (aggregator, sidecar, trainer) call these functions at the edge of every RPC and
work with domain objects only, so the wire format can change in one place.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from . import fedsilo_pb2 as pb
from ._compression import RoundCompression
from ._messages import PolicyVerdict, RoundPlan
from ._statistics import StatisticsStep, ranges_from_json, ranges_to_json
from ._streams import CHUNK_BYTES, BlobAssembler, split_bytes, vector_from_bytes, vector_to_bytes
from ._strict import MessageError, StrictMessage

H = TypeVar("H", bound=StrictMessage)


def plan_to_proto(plan: RoundPlan) -> pb.RoundPlan:
    """A round plan for the wire."""
    return pb.RoundPlan(
        round=plan.round,
        finished=plan.finished,
        evaluate_only=plan.evaluate_only,
        fit_config_json=json.dumps(plan.fit_config, sort_keys=True),
        aggregation=plan.aggregation,
        fractional_bits=plan.fractional_bits,
        threshold=plan.threshold,
        participants=list(plan.participants),
        model_digest=plan.model_digest,
        vector_length=plan.vector_length,
        failure=plan.failure,
        model_claim_json=plan.model_claim,
        model_signature=plan.model_signature,
        compression_json=plan.compression.canonical_bytes().decode() if plan.compression is not None else "",
        signing_keys=dict(plan.signing_keys),
    )


def plan_from_proto(message: pb.RoundPlan) -> RoundPlan:
    """A round plan from the wire."""
    try:
        fit_config = json.loads(message.fit_config_json) if message.fit_config_json else {}
    except json.JSONDecodeError as error:
        raise MessageError(f"RoundPlan.fit_config_json: not JSON ({error})") from error
    return RoundPlan(
        round=message.round,
        finished=message.finished,
        evaluate_only=message.evaluate_only,
        fit_config=fit_config,
        aggregation=message.aggregation,
        fractional_bits=message.fractional_bits,
        threshold=message.threshold,
        participants=tuple(message.participants),
        model_digest=message.model_digest,
        vector_length=message.vector_length,
        failure=message.failure,
        model_claim=message.model_claim_json,
        model_signature=message.model_signature,
        compression=RoundCompression.parse(message.compression_json) if message.compression_json else None,
        signing_keys=dict(message.signing_keys),
    )


def verdict_to_proto(verdict: PolicyVerdict) -> pb.Decision:
    """A decision for the wire."""
    return pb.Decision(
        accepted=verdict.accepted,
        reasons=list(verdict.reasons),
        policy_revision=verdict.policy_revision,
    )


def verdict_from_proto(message: pb.Decision) -> PolicyVerdict:
    """A decision from the wire."""
    return PolicyVerdict(
        accepted=message.accepted,
        reasons=tuple(message.reasons),
        policy_revision=message.policy_revision,
    )


def blob_to_chunks(data: bytes, chunk_bytes: int = CHUNK_BYTES) -> Iterator[pb.BytesChunk]:
    """A byte string as a stream of chunks of at most ``chunk_bytes`` bytes."""
    for offset, total, piece in split_bytes(data, chunk_bytes):
        yield pb.BytesChunk(offset=offset, total=total, data=piece)


def blob_from_chunks(chunks: Iterable[pb.BytesChunk], limit: int) -> bytes:
    """Reassemble a chunked byte string of at most ``limit`` bytes."""
    assembler = BlobAssembler(limit)
    for chunk in chunks:
        assembler.add(chunk.offset, chunk.total, chunk.data)
    return assembler.result()


def frames_out(header: StrictMessage, blob: bytes) -> Iterator[pb.Frame]:
    """A trainer-link message: the header's canonical JSON frame, then the blob in chunks."""
    yield pb.Frame(header_json=header.canonical_bytes().decode())
    for chunk in blob_to_chunks(blob):
        yield pb.Frame(blob=chunk)


def frames_in(frames: Iterable[pb.Frame], limit: int, header_type: type[H]) -> tuple[H, bytes]:
    """Read a trainer-link message whose header must come first and parse as ``header_type``.

    ``MessageError`` for a malformed header, ``StreamError`` for a malformed blob.
    """
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None or first.WhichOneof("part") != "header_json":
        raise MessageError("frame stream must start with a header")
    header = header_type.parse(first.header_json)
    assembler = BlobAssembler(limit)
    seen_blob = False
    for frame in iterator:
        if frame.WhichOneof("part") != "blob":
            raise MessageError("a second header arrived inside a frame stream")
        assembler.add(frame.blob.offset, frame.blob.total, frame.blob.data)
        seen_blob = True
    return header, assembler.result() if seen_blob else b""


def update_stream(
    metadata_json: bytes,
    signature: bytes,
    chunks: Iterable[tuple[int, npt.NDArray[np.generic]]],
    dtype: str,
) -> Iterator[pb.UpdateChunk]:
    """An update as a stream: signed metadata, then vector chunks in order."""
    yield pb.UpdateChunk(metadata=pb.SignedMetadata(metadata_json=metadata_json, signature=signature))
    for offset, array in chunks:
        yield pb.UpdateChunk(vector=pb.VectorChunk(offset=offset, dtype=dtype, data=vector_to_bytes(array, dtype)))


def update_metadata_from_proto(message: pb.UpdateChunk) -> tuple[bytes, bytes]:
    """The signed metadata bytes and signature of an update stream's first message."""
    if message.WhichOneof("part") != "metadata":
        raise MessageError("an update stream must start with its signed metadata")
    return message.metadata.metadata_json, message.metadata.signature


def update_chunk_from_proto(message: pb.UpdateChunk) -> tuple[int, str, npt.NDArray[np.generic]]:
    """``(offset, dtype, values)`` of one vector chunk."""
    if message.WhichOneof("part") != "vector":
        raise MessageError("signed metadata may appear only once, at the start")
    chunk = message.vector
    return chunk.offset, chunk.dtype, vector_from_bytes(chunk.data, chunk.dtype)


def share_upload(ref: pb.RoundRef, blob: bytes) -> Iterator[pb.ShareUpload]:
    """A decryption share as a stream (homomorphic mode): the round, then the bytes in chunks."""
    yield pb.ShareUpload(ref=ref)
    for chunk in blob_to_chunks(blob):
        yield pb.ShareUpload(blob=chunk)


def share_upload_from_proto(messages: Iterator[pb.ShareUpload], limit: int) -> tuple[pb.RoundRef, bytes]:
    """The round and the reassembled bytes (at most ``limit``) of a decryption-share stream."""
    first = next(messages, None)
    if first is None or first.WhichOneof("part") != "ref":
        raise MessageError("a decryption-share stream must start with its round")

    def blobs() -> Iterator[pb.BytesChunk]:
        for message in messages:
            if message.WhichOneof("part") != "blob":
                raise MessageError("the round may appear only once, at the start")
            yield message.blob

    return first.ref, blob_from_chunks(blobs(), limit)


def round_ref(job: str, round_number: int, silo: str) -> pb.RoundRef:
    """The reference naming one silo's part in one round of a job."""
    return pb.RoundRef(job=job, round=round_number, silo=silo)


def join_request(job: str, silo: str, num_samples: int) -> pb.JoinRequest:
    """A silo's request to take part in a job with ``num_samples`` training records."""
    return pb.JoinRequest(job=job, silo=silo, num_samples=num_samples)


def wait_round_request(job: str, silo: str, after_round: int) -> pb.WaitRoundRequest:
    """A silo's request for the first round plan after ``after_round``."""
    return pb.WaitRoundRequest(job=job, silo=silo, after_round=after_round)


def signed_metadata(metadata_json: bytes, signature: bytes) -> pb.SignedMetadata:
    """Signed canonical bytes (an evaluation report) for the wire."""
    return pb.SignedMetadata(metadata_json=metadata_json, signature=signature)


def secagg_envelope(ref: pb.RoundRef, body: bytes) -> pb.SecAggEnvelope:
    """An opaque secure-aggregation message for one silo's part in one round."""
    return pb.SecAggEnvelope(ref=ref, body=body)


def task_request(silo: str, next_round: int) -> pb.TaskRequest:
    """A trainer's request for the first task at or after ``next_round``."""
    return pb.TaskRequest(silo=silo, next_round=next_round)


def link_ack(problem: str | None) -> pb.Ack:
    """The sidecar's answer to a trainer result: accepted, or refused with the reason."""
    return pb.Ack(ok=problem is None, message=problem or "")


def statistics_step_to_proto(step: StatisticsStep) -> pb.StatisticsStep:
    """The hub's statistics step for the wire."""
    return pb.StatisticsStep(
        **{"pass": step.pass_number},  # ``pass`` is a Python keyword
        ranges_json=ranges_to_json(step.ranges),
        participants=list(step.participants),
        failure=step.failure,
        statistics_digest=step.statistics_digest,
        preprocessing_digest=step.preprocessing_digest,
        preprocessing_json=step.preprocessing_json,
    )


def statistics_step_from_proto(message: pb.StatisticsStep) -> StatisticsStep:
    """The hub's statistics step from the wire; ``MessageError`` for malformed ranges."""
    return StatisticsStep(
        pass_number=getattr(message, "pass"),
        participants=tuple(message.participants),
        ranges=ranges_from_json(message.ranges_json),
        failure=message.failure,
        statistics_digest=message.statistics_digest,
        preprocessing_digest=message.preprocessing_digest,
        preprocessing_json=message.preprocessing_json,
    )
