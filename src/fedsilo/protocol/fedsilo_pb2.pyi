from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RoundRef(_message.Message):
    __slots__ = ("job", "round", "silo")
    JOB_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SILO_FIELD_NUMBER: _ClassVar[int]
    job: str
    round: int
    silo: str
    def __init__(self, job: _Optional[str] = ..., round: _Optional[int] = ..., silo: _Optional[str] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("job", "silo", "num_samples")
    JOB_FIELD_NUMBER: _ClassVar[int]
    SILO_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    job: str
    silo: str
    num_samples: int
    def __init__(self, job: _Optional[str] = ..., silo: _Optional[str] = ..., num_samples: _Optional[int] = ...) -> None: ...

class JoinReply(_message.Message):
    __slots__ = ("total_rounds", "aggregator_public_key")
    TOTAL_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATOR_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    total_rounds: int
    aggregator_public_key: bytes
    def __init__(self, total_rounds: _Optional[int] = ..., aggregator_public_key: _Optional[bytes] = ...) -> None: ...

class WaitRoundRequest(_message.Message):
    __slots__ = ("job", "silo", "after_round")
    JOB_FIELD_NUMBER: _ClassVar[int]
    SILO_FIELD_NUMBER: _ClassVar[int]
    AFTER_ROUND_FIELD_NUMBER: _ClassVar[int]
    job: str
    silo: str
    after_round: int
    def __init__(self, job: _Optional[str] = ..., silo: _Optional[str] = ..., after_round: _Optional[int] = ...) -> None: ...

class RoundPlan(_message.Message):
    __slots__ = ("round", "finished", "evaluate_only", "fit_config_json", "aggregation", "fractional_bits", "threshold", "participants", "model_digest", "vector_length", "failure", "model_claim_json", "model_signature", "compression_json", "signing_keys")
    class SigningKeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ROUND_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    EVALUATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    FIT_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    FRACTIONAL_BITS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    VECTOR_LENGTH_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    MODEL_CLAIM_JSON_FIELD_NUMBER: _ClassVar[int]
    MODEL_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_JSON_FIELD_NUMBER: _ClassVar[int]
    SIGNING_KEYS_FIELD_NUMBER: _ClassVar[int]
    round: int
    finished: bool
    evaluate_only: bool
    fit_config_json: str
    aggregation: str
    fractional_bits: int
    threshold: int
    participants: _containers.RepeatedScalarFieldContainer[str]
    model_digest: str
    vector_length: int
    failure: str
    model_claim_json: bytes
    model_signature: bytes
    compression_json: str
    signing_keys: _containers.ScalarMap[str, str]
    def __init__(self, round: _Optional[int] = ..., finished: _Optional[bool] = ..., evaluate_only: _Optional[bool] = ..., fit_config_json: _Optional[str] = ..., aggregation: _Optional[str] = ..., fractional_bits: _Optional[int] = ..., threshold: _Optional[int] = ..., participants: _Optional[_Iterable[str]] = ..., model_digest: _Optional[str] = ..., vector_length: _Optional[int] = ..., failure: _Optional[str] = ..., model_claim_json: _Optional[bytes] = ..., model_signature: _Optional[bytes] = ..., compression_json: _Optional[str] = ..., signing_keys: _Optional[_Mapping[str, str]] = ...) -> None: ...

class BytesChunk(_message.Message):
    __slots__ = ("offset", "total", "data")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    offset: int
    total: int
    data: bytes
    def __init__(self, offset: _Optional[int] = ..., total: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class SecAggEnvelope(_message.Message):
    __slots__ = ("ref", "body")
    REF_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ref: RoundRef
    body: bytes
    def __init__(self, ref: _Optional[_Union[RoundRef, _Mapping]] = ..., body: _Optional[bytes] = ...) -> None: ...

class SignedMetadata(_message.Message):
    __slots__ = ("metadata_json", "signature")
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    metadata_json: bytes
    signature: bytes
    def __init__(self, metadata_json: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class VectorChunk(_message.Message):
    __slots__ = ("offset", "dtype", "data")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    offset: int
    dtype: str
    data: bytes
    def __init__(self, offset: _Optional[int] = ..., dtype: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class UpdateChunk(_message.Message):
    __slots__ = ("metadata", "vector")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    metadata: SignedMetadata
    vector: VectorChunk
    def __init__(self, metadata: _Optional[_Union[SignedMetadata, _Mapping]] = ..., vector: _Optional[_Union[VectorChunk, _Mapping]] = ...) -> None: ...

class ShareUpload(_message.Message):
    __slots__ = ("ref", "blob")
    REF_FIELD_NUMBER: _ClassVar[int]
    BLOB_FIELD_NUMBER: _ClassVar[int]
    ref: RoundRef
    blob: BytesChunk
    def __init__(self, ref: _Optional[_Union[RoundRef, _Mapping]] = ..., blob: _Optional[_Union[BytesChunk, _Mapping]] = ...) -> None: ...

class UploadGrant(_message.Message):
    __slots__ = ("hold_seconds",)
    HOLD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    hold_seconds: float
    def __init__(self, hold_seconds: _Optional[float] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("accepted", "reasons", "policy_revision")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    POLICY_REVISION_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    reasons: _containers.RepeatedScalarFieldContainer[str]
    policy_revision: str
    def __init__(self, accepted: _Optional[bool] = ..., reasons: _Optional[_Iterable[str]] = ..., policy_revision: _Optional[str] = ...) -> None: ...

class StatisticsStep(_message.Message):
    __slots__ = ("ranges_json", "participants", "failure", "statistics_digest", "preprocessing_digest", "preprocessing_json")
    PASS_FIELD_NUMBER: _ClassVar[int]
    RANGES_JSON_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    STATISTICS_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PREPROCESSING_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PREPROCESSING_JSON_FIELD_NUMBER: _ClassVar[int]
    ranges_json: str
    participants: _containers.RepeatedScalarFieldContainer[str]
    failure: str
    statistics_digest: str
    preprocessing_digest: str
    preprocessing_json: str
    def __init__(self, ranges_json: _Optional[str] = ..., participants: _Optional[_Iterable[str]] = ..., failure: _Optional[str] = ..., statistics_digest: _Optional[str] = ..., preprocessing_digest: _Optional[str] = ..., preprocessing_json: _Optional[str] = ..., **kwargs) -> None: ...

class Frame(_message.Message):
    __slots__ = ("header_json", "blob")
    HEADER_JSON_FIELD_NUMBER: _ClassVar[int]
    BLOB_FIELD_NUMBER: _ClassVar[int]
    header_json: str
    blob: BytesChunk
    def __init__(self, header_json: _Optional[str] = ..., blob: _Optional[_Union[BytesChunk, _Mapping]] = ...) -> None: ...

class TaskRequest(_message.Message):
    __slots__ = ("silo", "next_round")
    SILO_FIELD_NUMBER: _ClassVar[int]
    NEXT_ROUND_FIELD_NUMBER: _ClassVar[int]
    silo: str
    next_round: int
    def __init__(self, silo: _Optional[str] = ..., next_round: _Optional[int] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("ok", "message")
    OK_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    message: str
    def __init__(self, ok: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...
