"""Status of the ``FederatedJob`` and ``Silo`` resources, and how the aggregator reports progress.

The operator writes the conditions and the phase; the aggregator writes the round figures
through a :class:`StatusReporter` (in a cluster ``fedsilo.kube.KubeStatusReporter``, which
patches ``federatedjobs/status`` of its own job and nothing else). The CRD generator turns
these models into the status schemas, so their descriptions are what ``kubectl explain``
shows. No field has a default: the API server would otherwise write defaults into every
status patch and blur which writer owns which field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ._types import RoundNumber, SiloName


class _Status(BaseModel):
    """Common settings: camelCase on the wire, unknown fields rejected, immutable."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


# Conditions merge by type, so the operator and other writers can each own theirs (server-side apply).
_CONDITIONS: dict[str, Any] = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}


class ConditionType(StrEnum):
    """The conditions the operator sets, as Kubernetes API conventions name them."""

    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    #: Set when the job policy refused the job: its reasons are the message.
    DENIED = "Denied"
    #: On a Silo: True while its operator refuses jobs that name it without its consent (spec.consent).
    CONSENT_REFUSED = "ConsentRefused"
    #: On a job with fitted preprocessing: True once the statistics phase released (status.statistics).
    STATISTICS_RELEASED = "StatisticsReleased"


class Condition(_Status):
    """One aspect of the object's state, as in Kubernetes API conventions."""

    type: str = Field(max_length=316, description="Ready, Progressing or Degraded.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Why the condition is in its state, one CamelCase word (e.g. WaitingForSiloIdentity).",
    )
    message: str = Field(max_length=32768, description="What happened and, when it needs one, what to do about it.")
    last_transition_time: str = Field(
        json_schema_extra={"format": "date-time"},
        description="When status last changed (RFC 3339).",
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation the condition was computed from."
    )


class JobPhase(StrEnum):
    """Where a job is in its life."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    #: The job policy refused the job before anything of it was created.
    DENIED = "Denied"


class JobResult(StrEnum):
    """How a finished job ended, as the aggregator reports it."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ModelReference(_Status):
    """Where the newest global model is and what it is."""

    uri: str = Field(max_length=4096, description="Registry location of the model (file path or s3:// URI).")
    round: int = Field(ge=0, description="The round that produced it.")
    digest: str = Field(max_length=128, description="sha256 digest of the stored model, 'sha256:<hex>'.")


class AggregatorEndpoint(_Status):
    """How a silo's sidecar reaches the job's aggregator."""

    address: str = Field(max_length=512, description="host:port of the aggregator's gRPC (mTLS) endpoint.")
    ca_certificate: str = Field(
        max_length=16384,
        description="PEM certificate of the CA that signed the aggregator's serving certificate (public).",
    )
    model_key: str | None = Field(
        default=None,
        max_length=64,
        description="The hub's Ed25519 public key (base64) that signs every global model of the job; each "
        "sidecar is given it and refuses a model its signature does not verify under.",
    )


class EvidenceHead(_Status):
    """A hash chain's newest signed head (``fedsilo.audit.SignedHead``), published outside the file it heads."""

    format: str = Field(max_length=64, description="The evidence format, e.g. fedsilo.audit/v1.")
    kind: str = Field(max_length=32, description="The kind of checkpoint that signed it (checkpoint or close).")
    seq: int = Field(ge=0, description="The last record (audit log) or row (ledger) the signature covers.")
    hash: str = Field(max_length=128, description="That record's hash, 'sha256:<hex>'.")
    key_fingerprint: str = Field(max_length=128, description="Fingerprint of the key that signed it.")
    signature: str = Field(max_length=128, description="Ed25519 signature over the head, base64.")


class JobEvidence(_Status):
    """Where the job's evidence files stood at the last round: check a file against these with --head."""

    audit_head: EvidenceHead | None = Field(
        default=None,
        description="The audit log's signed head (fedsilo audit verify LOG --key PUB --head HEAD).",
    )
    ledger_head: EvidenceHead | None = Field(
        default=None,
        description="The hub privacy ledger's signed head, for a job with differential privacy "
        "(fedsilo ledger verify LEDGER --key PUB --head HEAD).",
    )


class ModelQualityStatus(_Status):
    """How the newest evaluated model does for every silo: a model good on average and bad for one partner fails it."""

    round: int = Field(ge=0, description="The round whose global model the silos evaluated (0: the initial model).")
    stage: Literal["global", "personalized"] = Field(
        description="global: the federated model; personalized: each silo's model after personalization."
    )
    mean_accuracy: float = Field(ge=0.0, le=1.0, description="Accuracy over every silo's held-out records.")
    worst_silo: str = Field(max_length=253, description="The silo the model does worst for.")
    worst_accuracy: float = Field(ge=0.0, le=1.0, description="That silo's accuracy.")
    accuracy_std_dev: float = Field(
        ge=0.0, le=1.0, description="Standard deviation of the silos' accuracies (unweighted): the spread."
    )
    silos: dict[str, float] = Field(
        max_length=1000, description="Each silo's accuracy, from its signed evaluation report, by silo name."
    )


class StatisticsStatus(_Status):
    """What the job's statistics phase released before round 1 (docs/statistics.md); no count, no value of a feature.

    The totals themselves stay in the aggregator's state directory (statistics.json): the
    status says that the phase happened, who took part, and which transform every silo applies.
    """

    released_at: str = Field(
        json_schema_extra={"format": "date-time"}, description="When the hub released the statistics (RFC 3339)."
    )
    silos: list[str] = Field(max_length=1000, description="The silos whose totals entered the statistics.")
    excluded: dict[str, str] | None = Field(
        default=None,
        max_length=1000,
        description="Silos left out of the statistics, by name: the reason code and why (e.g. below_min_count).",
    )
    features: int = Field(ge=0, description="Features of every silo's records (label removed).")
    categorical: int = Field(ge=0, description="Of those, the categorical ones (one-hot over a shared vocabulary).")
    transformed_features: int = Field(ge=0, description="Features the fitted transform gives the model.")
    scaling: str = Field(max_length=32, description="The fitted scaling (spec.data.preprocessing.scaling).")
    epsilon: float | None = Field(
        default=None, ge=0.0, description="The statistics' DP epsilon charged to each silo's ledger; unset: exact."
    )
    epsilon_spent: dict[str, float] | None = Field(
        default=None,
        max_length=1000,
        description="Epsilon the hub's ledger charged each silo in silos for the release, by silo name: the same "
        "row as the silo's own ledger holds (round 0). Unset: exact statistics, which charge nothing.",
    )
    statistics_digest: str = Field(
        max_length=128, description="sha256 of the released statistics (statistics.json in the hub's state)."
    )
    preprocessing_digest: str = Field(
        max_length=128,
        description="sha256 of the fitted transform every silo applies; each round's lineage names the same digest.",
    )


class AdmissionRecord(_Status):
    """The job policy's decision on a job, kept on the job: which policy revision judged which input."""

    allowed: bool = Field(description="Whether the job policy admitted the job.")
    reasons: list[str] = Field(max_length=64, description="Every reason of a refusal, '<code>: <explanation>'.")
    policy_revision: str = Field(max_length=256, description="The policy bundle revision that decided.")
    input_digest: str = Field(
        max_length=128, description="sha256 of the policy input (canonical JSON): re-decide it to check the record."
    )
    decided_at: str = Field(json_schema_extra={"format": "date-time"}, description="When the operator decided.")


class CompressionStatus(_Status):
    """The compression the hub chose for the last completed round."""

    bits: int = Field(ge=0, le=32, description="Bits per quantized value (0: float32 values).")
    word_bits: int = Field(ge=0, le=32, description="Bits per word on the wire (masked: bits plus headroom).")
    subset_size: int = Field(ge=0, description="Coordinates of the round's shared subset (0: all).")
    top_k: int = Field(ge=0, description="Coordinates each silo keeps in plain top-k (0: all).")
    reason: str = Field(max_length=1024, description="Why the hub chose this level (adaptive compression).")


class FederatedJobStatus(_Status):
    """What the operator and the aggregator observed about a job."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation the operator last reconciled."
    )
    phase: JobPhase | None = Field(
        default=None, description="Pending, Running, Succeeded, Failed, or Denied (refused by the job policy)."
    )
    admission: AdmissionRecord | None = Field(
        default=None, description="The job policy's decision, made once before anything of the job was created."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=8,
        json_schema_extra=_CONDITIONS,
        description="Ready (aggregator serving), Progressing (rounds advancing), Degraded (something needs attention), "
        "and StatisticsReleased on a job whose preprocessing the statistics phase fits.",
    )
    round: int | None = Field(default=None, ge=0, description="The last completed round (0 before the first).")
    participants: list[str] | None = Field(
        default=None,
        max_length=1000,
        description="Silos whose update entered the aggregate of the last completed round.",
    )
    dropouts: list[str] | None = Field(
        default=None,
        max_length=1000,
        description="Silos that did not deliver an accepted update in the last completed round.",
    )
    left: list[str] | None = Field(
        default=None,
        max_length=1000,
        description="Silos whose sidecar was stopped and left the last completed round at once (a signed Leave) "
        "instead of at its deadline; the audit log keeps each one's reason.",
    )
    participation: str | None = Field(
        default=None,
        max_length=16,
        description="Participants of the last round over the silos in the job, e.g. 3/3.",
    )
    denials: int | None = Field(default=None, ge=0, description="Updates the policy denied since the job began.")
    epsilon: dict[str, float] | None = Field(
        default=None, description="Privacy budget (epsilon) each silo has spent in this job, by silo name."
    )
    max_epsilon_spent: float | None = Field(
        default=None, ge=0.0, description="The largest epsilon any silo has spent in this job."
    )
    anomaly_scores: dict[str, float] | None = Field(
        default=None,
        description="Each silo's anomaly score over the rounds so far (docs/robustness.md), by silo name; "
        "spec.policy.maxAnomalyScore denies the updates of a silo above it.",
    )
    latest_model: ModelReference | None = Field(default=None, description="The newest global model.")
    accuracy: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Accuracy of the global model of round accuracyRound on the silos' own data: the "
        "record-weighted mean of their signed evaluation reports (the hub never sees the data).",
    )
    accuracy_round: int | None = Field(
        default=None, ge=0, description="The round whose global model accuracy describes (the last, once the job ends)."
    )
    compression: CompressionStatus | None = Field(
        default=None, description="The last completed round's compression level and why (spec.compression)."
    )
    endpoint: AggregatorEndpoint | None = Field(
        default=None, description="Where silos reach the aggregator; published by the operator."
    )
    evidence: JobEvidence | None = Field(
        default=None,
        description="The audit log's and the hub ledger's newest signed heads, published by the aggregator "
        "each round outside the files, so a file cut back to an earlier checkpoint is caught.",
    )
    quality: ModelQualityStatus | None = Field(
        default=None,
        description="Per-silo accuracy of the newest evaluated model, its worst silo and spread; published by "
        "the aggregator from the silos' signed evaluation reports.",
    )
    statistics: StatisticsStatus | None = Field(
        default=None,
        description="The statistics phase's release, published by the aggregator when the phase ends "
        "(jobs with fitted spec.data.preprocessing).",
    )
    result: JobResult | None = Field(
        default=None, description="Set by the aggregator when the job ends: Succeeded or Failed."
    )
    message: str | None = Field(
        default=None,
        max_length=32768,
        description="The aggregator's last word on the job, e.g. why it failed.",
    )


class SiloIdentityStatus(_Status):
    """The silo's public identity as the operator found or created it."""

    public_key: str | None = Field(default=None, max_length=64, description="Ed25519 public key, base64.")
    fingerprint: str | None = Field(default=None, max_length=128, description="Fingerprint of the public key.")
    secret_name: str | None = Field(
        default=None,
        max_length=253,
        description="The Secret holding the private key, in the silo's workload namespace.",
    )
    namespace: str | None = Field(
        default=None, max_length=63, description="The namespace where the silo's pods and identity Secret live."
    )
    ca_certificate: str | None = Field(
        default=None,
        max_length=16384,
        description="PEM certificates of the silo's CAs, which the hub trusts for this silo's mTLS client "
        "certificates (public): one, or two while the operator rotates the CA (the old one first, then the new).",
    )
    created_by_operator: bool | None = Field(
        default=None,
        description="True if the operator generated the key (it then deletes the Secret with the Silo).",
    )


class SiloCertificateStatus(_Status):
    """The sidecar's current mTLS client certificate, when the operator renews it (spec.identity.certificateLifetime)."""

    secret_name: str | None = Field(
        default=None, max_length=253, description="The Secret the sidecar mounts it from, in the workload namespace."
    )
    fingerprint: str | None = Field(
        default=None, max_length=128, description="SHA-256 of the certificate (DER), as sha256:hex."
    )
    not_after: str | None = Field(default=None, max_length=64, description="When it expires (RFC 3339).")
    renew_after: str | None = Field(
        default=None,
        max_length=64,
        description="When the operator renews it: two thirds of its life (RFC 3339).",
    )
    renewals: int | None = Field(
        default=None, ge=0, description="Certificates issued since the operator (re)started keeping this one."
    )
    ca_fingerprint: str | None = Field(
        default=None, max_length=128, description="SHA-256 of the CA certificate that signed it, as sha256:hex."
    )


class SiloAuthorityStatus(_Status):
    """The silo's CA that the operator keeps, and the rotation under way (spec.identity.certificateAuthority)."""

    fingerprint: str | None = Field(
        default=None, max_length=128, description="SHA-256 of the current CA certificate, as sha256:hex."
    )
    not_after: str | None = Field(default=None, max_length=64, description="When the current CA expires (RFC 3339).")
    rotate_after: str | None = Field(
        default=None,
        max_length=64,
        description="When the operator rotates the CA by itself: two thirds of its life (RFC 3339).",
    )
    rotation: int | None = Field(
        default=None, ge=0, description="The last rotation done (spec.identity.certificateAuthority.rotation)."
    )
    retiring: str | None = Field(
        default=None,
        max_length=128,
        description="During a rotation's overlap: the old CA's fingerprint, which the hub still trusts.",
    )
    retire_after: str | None = Field(
        default=None,
        max_length=64,
        description="When the old CA is dropped: the expiry of the last certificate it issued (RFC 3339).",
    )


class SiloJobStatus(_Status):
    """One job the silo takes part in."""

    name: str = Field(max_length=253, description="The FederatedJob's name.")
    phase: JobPhase | None = Field(default=None, description="The job's phase.")
    epsilon_spent: float | None = Field(default=None, ge=0.0, description="Epsilon this silo spent in the job.")
    evidence: JobEvidence | None = Field(
        default=None,
        description="The job's audit log and hub ledger heads as its status last published them, copied here by "
        "the silo's operator so the silo keeps its own record of them.",
    )


class SiloStatus(_Status):
    """What the operator observed about a silo."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation the operator last reconciled."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=8,
        json_schema_extra=_CONDITIONS,
        description="Ready (identity in place and registered), Degraded.",
    )
    identity: SiloIdentityStatus | None = Field(default=None, description="The silo's identity.")
    certificate: SiloCertificateStatus | None = Field(
        default=None, description="The sidecar's short-lived client certificate, if the operator renews it."
    )
    certificate_authority: SiloAuthorityStatus | None = Field(
        default=None, description="The silo's CA, if the operator keeps it, and its rotation."
    )
    jobs: list[SiloJobStatus] | None = Field(
        default=None,
        max_length=1000,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="The jobs that name this silo.",
    )
    epsilon_spent: float | None = Field(
        default=None, ge=0.0, description="Epsilon spent across all jobs (basic composition: the sum)."
    )


@dataclass(frozen=True)
class RoundReport:
    """The aggregator's figures after a round closed; cumulative, so a lost report is healed by the next."""

    round: RoundNumber
    participants: tuple[SiloName, ...]
    dropouts: tuple[SiloName, ...]
    denials_total: int
    epsilon_spent: Mapping[SiloName, float] = field(default_factory=dict)
    latest_model: ModelReference | None = None
    evidence: JobEvidence | None = None
    compression: CompressionStatus | None = None
    anomaly_scores: Mapping[SiloName, float] = field(default_factory=dict)
    # Why the round's sum was not applied (the model stayed); None when it counted.
    void: str | None = None
    # Silos that left during the round (a stopping sidecar said so), with the reason each gave.
    left: Mapping[SiloName, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Denial:
    """One update the policy denied."""

    round: RoundNumber
    silo: SiloName
    reasons: tuple[str, ...]
    policy_revision: str


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended."""

    succeeded: bool
    rounds_completed: int
    message: str


class StatusReporter(Protocol):
    """Where the aggregator reports progress; implementations must not raise on a transient failure."""

    def round_completed(self, report: RoundReport) -> None:
        """A round closed with ``report``'s figures."""

    def update_denied(self, denial: Denial) -> None:
        """The policy denied one update."""

    def job_finished(self, outcome: JobOutcome) -> None:
        """The job ended (all rounds done, or quorum lost)."""

    def model_evaluated(self, quality: ModelQualityStatus) -> None:
        """The silos' signed evaluations of a model arrived: per-silo accuracy and its spread."""

    def statistics_released(self, statistics: StatisticsStatus) -> None:
        """The statistics phase released its totals and the fitted transform, before round 1."""
