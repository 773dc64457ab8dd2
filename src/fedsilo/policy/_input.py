"""The policy inputs: typed, validated builders of the documents the Rego decides on.

``UpdatePolicyInput`` is the ``fedsilo.update/v1`` document the aggregator builds for every
update; ``JobPolicyInput`` is the ``fedsilo.job/v1`` document the operator builds for a
FederatedJob. Both are the contract auditors read (docs/policy-input.md): the JSON Schemas
in ``schema/`` are generated from these models (``input_json_schemas``) and a test fails if
they drift.

Values are typed here, judged in Rego: a negative L2 norm or an unknown schema version is
valid input that the policy denies with a reason, so the gate records a decision for every
update instead of raising on odd claims.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from fedsilo.api import FederatedJob
from fedsilo.protocol import RoundCompression, UpdateMetadata

from ._reasons import Refusal

UPDATE_SCHEMA_VERSION: Final = "fedsilo.update/v1"
JOB_SCHEMA_VERSION: Final = "fedsilo.job/v1"

AggregationName = Literal["masked", "plain", "homomorphic"]
DataClassName = Literal["public", "internal", "sensitive"]


class PolicyInputError(ValueError):
    """A document is not a valid policy input; the message names every offending field."""


class _Facts(BaseModel):
    # strict: a bool is not an int and "3" is not a number; NaN and infinities cannot be
    # written as JSON, so they are refused here rather than by the engine.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class CompressionFacts(_Facts):
    """The round's compression as the hub chose it (one level for every silo of the round)."""

    bits: int = Field(description="Bits per quantized value (0: float32 values, plain mode).")
    word_bits: int = Field(description="Bits per word on the wire (masked: bits plus the sum's headroom).")
    subset_size: int = Field(description="Coordinates of the shared subset every silo sends (0: all).")
    top_k: int = Field(description="Coordinates each silo keeps in plain top-k (0: all).")

    @classmethod
    def of(cls, settings: RoundCompression) -> CompressionFacts:
        """The facts of the round's published settings."""
        return cls(
            bits=settings.bits, word_bits=settings.word_bits, subset_size=settings.subset_size, top_k=settings.top_k
        )


class JobFacts(_Facts):
    """The job and its open round, as the aggregator runs it."""

    name: str = Field(description="FederatedJob name.")
    round: int = Field(description="The round now open for updates.")
    norm_cap: float = Field(description="Largest L2 norm an update may have.")
    max_epsilon: float | None = Field(default=None, description="Job-wide epsilon ceiling per silo; null: none.")
    aggregation: AggregationName = Field(description="How updates are combined.")
    data_class: DataClassName = Field(description="Sensitivity class of the job's data.")
    min_samples: int | None = Field(
        default=None, description="Fewest records behind one update; null: the policy's default."
    )
    delta: float | None = Field(default=None, description="The delta of (epsilon, delta)-DP; null without DP.")
    silos: tuple[str, ...] = Field(description="Names of the silos taking part.")
    max_anomaly_score: float | None = Field(
        default=None,
        description="Highest anomaly score a silo may have and send an update; null: scores are not judged.",
    )
    compression: CompressionFacts | None = Field(
        default=None, description="How the open round's updates are compressed; null: they are not."
    )
    phase: Literal["training", "statistics"] = Field(
        default="training",
        description=(
            "What is uploaded: a training update, or a silo's masked totals in the statistics phase before round 1 "
            "(docs/statistics.md; round is then the pass, 1 or 2)."
        ),
    )

    @classmethod
    def of(cls, job: FederatedJob, round_number: int, compression: RoundCompression | None = None) -> JobFacts:
        """The facts of ``job`` while ``round_number`` is open (compressed with ``compression``)."""
        spec = job.spec
        return cls(
            name=job.metadata.name,
            round=round_number,
            norm_cap=spec.policy.norm_cap,
            max_epsilon=spec.policy.max_epsilon,
            aggregation=spec.aggregation.mode.value,
            data_class=spec.policy.data_class.value,
            min_samples=spec.policy.min_samples,
            delta=spec.privacy.delta,
            silos=tuple(spec.silos),
            max_anomaly_score=spec.policy.max_anomaly_score,
            compression=CompressionFacts.of(compression) if compression is not None else None,
        )


class SiloFacts(_Facts):
    """The silo that sent the update, as the hub knows it."""

    name: str = Field(description="Silo name, taken from its mTLS identity.")
    enrolled: bool = Field(description="The hub holds a registered key for this silo.")
    max_epsilon: float | None = Field(default=None, description="The silo's own lifetime ceiling; null: none.")
    anomaly_score: float | None = Field(
        default=None,
        description=(
            "How far the silo's updates of past rounds sat from the others', in robust standard deviations "
            "(docs/robustness.md); null until a round observed it."
        ),
    )


class UpdateFacts(_Facts):
    """What the silo signed about its update, and what the hub checked of it."""

    signature_valid: bool = Field(description="The metadata signature verifies against the silo's registered key.")
    round: int = Field(description="Round the silo says the update is for.")
    nonce: str = Field(description="Per-update nonce, for replay detection.")
    l2_norm: float = Field(description="L2 norm the silo claims for its (clipped) update.")
    num_samples: int = Field(description="Records the update was trained on.")
    epsilon_round: float | None = Field(default=None, description="Epsilon this round costs; null without DP.")
    payload_digest: str = Field(description="sha256:<hex> of the payload, as signed.")
    transport_problem: str | None = Field(
        default=None,
        description=(
            "What the hub's own checks found wrong, as a reason: the payload (digest, size, shape) or the signed "
            "privacy claims (mechanism, noise, epsilon); null if nothing."
        ),
    )

    @classmethod
    def of(cls, claims: UpdateMetadata, *, signature_valid: bool, refusal: Refusal | None) -> UpdateFacts:
        """The signed ``claims``, whether their signature held, and what the hub's steps refused, if anything."""
        return cls(
            signature_valid=signature_valid,
            round=claims.round,
            nonce=claims.nonce,
            l2_norm=claims.l2_norm,
            num_samples=claims.num_samples,
            epsilon_round=claims.epsilon_round,
            payload_digest=claims.payload_digest,
            transport_problem=None if refusal is None else refusal.text,
        )


class LedgerFacts(_Facts):
    """The hub's records about this silo: replay and privacy budget."""

    nonce_seen: bool = Field(description="The silo already used this nonce.")
    seen_nonces: int = Field(default=0, description="Nonces seen from this silo so far (context for auditors).")
    epsilon_spent: float | None = Field(default=None, description="Epsilon the silo has spent in this job.")
    epsilon_if_accepted: float | None = Field(
        default=None, description="Epsilon the silo will have spent in this job if this update is accepted."
    )
    epsilon_lifetime_if_accepted: float | None = Field(
        default=None,
        description="Epsilon across all the silo's jobs if accepted; null: only this job is tracked.",
    )

    @classmethod
    def of(cls, *, nonce_seen: bool, seen_nonces: int, budget: BudgetView | None) -> LedgerFacts:
        """The replay facts, with the privacy ledger's view of the silo's budget when the job runs with DP."""
        if budget is None:
            return cls(nonce_seen=nonce_seen, seen_nonces=seen_nonces)
        return cls(
            nonce_seen=nonce_seen,
            seen_nonces=seen_nonces,
            epsilon_spent=budget.epsilon_spent,
            epsilon_if_accepted=budget.epsilon_if_accepted,
            epsilon_lifetime_if_accepted=budget.epsilon_lifetime_if_accepted,
        )


@dataclass(frozen=True)
class BudgetView:
    """What the hub's privacy ledger says of one silo's budget for one update (``LedgerBook.policy_view``)."""

    epsilon_spent: float
    epsilon_if_accepted: float
    epsilon_lifetime_if_accepted: float | None


class _Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    def to_document(self) -> dict[str, Any]:
        """The JSON document the engines evaluate and the audit log stores; absent values as null."""
        return self.model_dump(mode="json")

    @classmethod
    def from_document(cls, document: Any) -> Self:
        """Validate a JSON document (e.g. one stored in the audit log); raise ``PolicyInputError``."""
        try:
            # JSON mode: arrays may stand for tuples, as they must after a round trip through a file.
            return cls.model_validate_json(json.dumps(document, allow_nan=False))
        except (ValueError, TypeError) as error:  # pydantic's ValidationError is a ValueError; so is NaN
            raise PolicyInputError(f"not a valid {cls.__name__}: {error}") from error


class UpdatePolicyInput(_Document):
    """The ``fedsilo.update/v1`` document: everything the policy sees about one update."""

    schema_version: Literal["fedsilo.update/v1"] = Field(
        default=UPDATE_SCHEMA_VERSION, description="Version of this document's schema."
    )
    job: JobFacts
    silo: SiloFacts
    update: UpdateFacts
    ledger: LedgerFacts


class PrivacyFacts(_Facts):
    """The job's differential privacy settings."""

    mode: Literal["none", "record", "silo"] = Field(description="none, record (DP-SGD) or silo (noise per update).")
    target_epsilon: float | None = Field(default=None, description="Epsilon the noise is calibrated to; null: none.")
    noise_multiplier: float | None = Field(default=None, description="Gaussian noise multiplier; null: derived.")
    delta: float | None = Field(default=None, description="The delta of (epsilon, delta)-DP.")


class JobSpecFacts(_Facts):
    """A FederatedJob's spec, as far as admission is concerned."""

    name: str = Field(description="FederatedJob name.")
    namespace: str | None = Field(default=None, description="FederatedJob namespace; null when run locally.")
    aggregation: AggregationName = Field(description="How updates are combined.")
    data_class: DataClassName = Field(description="Sensitivity class of the job's data.")
    silos: tuple[str, ...] = Field(description="Names of the silos taking part.")
    min_silos: int = Field(description="Quorum of accepted updates per round.")
    norm_cap: float = Field(description="Largest L2 norm an update may have.")
    min_samples: int | None = Field(default=None, description="Fewest records behind one update.")
    max_epsilon: float | None = Field(default=None, description="Job-wide epsilon ceiling per silo; null: none.")
    privacy: PrivacyFacts


class JobPolicyInput(_Document):
    """The ``fedsilo.job/v1`` document: a FederatedJob, for admission."""

    schema_version: Literal["fedsilo.job/v1"] = Field(
        default=JOB_SCHEMA_VERSION, description="Version of this document's schema."
    )
    job: JobSpecFacts

    @classmethod
    def from_job(cls, job: FederatedJob) -> JobPolicyInput:
        """The admission input for a FederatedJob object."""
        spec = job.spec
        return cls(
            job=JobSpecFacts(
                name=job.metadata.name,
                namespace=job.metadata.namespace,
                aggregation=spec.aggregation.mode.value,
                data_class=spec.policy.data_class.value,
                silos=tuple(spec.silos),
                min_silos=spec.min_silos,
                norm_cap=spec.policy.norm_cap,
                min_samples=spec.policy.min_samples,
                max_epsilon=spec.policy.max_epsilon,
                privacy=PrivacyFacts(
                    mode=spec.privacy.mode.value,
                    target_epsilon=spec.privacy.target_epsilon,
                    noise_multiplier=spec.privacy.noise_multiplier,
                    delta=spec.privacy.delta,
                ),
            )
        )


def input_json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each input document, by file name under ``fedsilo/policy/schema``."""
    schemas = {}
    for name, model, version in (
        ("update-input.v1.json", UpdatePolicyInput, UPDATE_SCHEMA_VERSION),
        ("job-input.v1.json", JobPolicyInput, JOB_SCHEMA_VERSION),
    ):
        schema = model.model_json_schema()
        schemas[name] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://fedsilo.io/schemas/{version}.json",
            **schema,
        }
    return schemas
