"""The one list of reason codes, and the typed refusal that carries one.

Every denial the hub or the policy gives names its cause as ``"<code>: <explanation>"``
(docs/policy-input.md). ``Reason`` is the list of every code: the Rego rules' codes, the
codes the hub's own admission steps find before the policy (passed to the policy as
``update.transport_problem``), and the job-admission codes. A test keeps this enum, the
doc's tables and the Rego's literals the same set, so a code cannot exist in one place only.

Admission steps raise ``Refusal`` (pyca's style: a check returns None or raises); only the
aggregator's gRPC edge turns a refusal into a verdict. Code that branches on why an update
was refused compares ``refusal.reason`` with a member, never the text.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Every reason code an update, an evaluation report or a job can be refused with."""

    # --- Update decision (policies/fedsilo/update): judged by the Rego from the input's facts.
    SCHEMA_VERSION_UNSUPPORTED = "schema_version_unsupported"
    INPUT_INVALID = "input_invalid"
    SIGNATURE_INVALID = "signature_invalid"
    SILO_NOT_ENROLLED = "silo_not_enrolled"
    SILO_NOT_IN_JOB = "silo_not_in_job"
    STALE_ROUND = "stale_round"
    NONCE_REPLAYED = "nonce_replayed"
    CLAIM_OUT_OF_RANGE = "claim_out_of_range"
    NORM_CAP_EXCEEDED = "norm_cap_exceeded"
    JOB_EPSILON_EXCEEDED = "job_epsilon_exceeded"
    SILO_EPSILON_EXCEEDED = "silo_epsilon_exceeded"
    EPSILON_UNACCOUNTED = "epsilon_unaccounted"
    AGGREGATION_NOT_ALLOWED = "aggregation_not_allowed"
    TOO_FEW_SAMPLES = "too_few_samples"
    UPDATE_ANOMALOUS = "update_anomalous"
    # A transport problem whose text names no known code (the Rego's fallback).
    TRANSPORT_PROBLEM = "transport_problem"

    # --- Found by the hub's admission steps before the policy.
    METADATA_INVALID = "metadata_invalid"
    IDENTITY_MISMATCH = "identity_mismatch"
    NO_OPEN_ROUND = "no_open_round"
    WRONG_JOB = "wrong_job"
    NOT_A_SURVIVOR = "not_a_survivor"
    UPDATE_INCOMPATIBLE = "update_incompatible"
    SHAPE_MISMATCH = "shape_mismatch"
    NUM_SAMPLES_INCONSISTENT = "num_samples_inconsistent"
    PRIVACY_MECHANISM_INVALID = "privacy_mechanism_invalid"
    PRIVACY_MECHANISM_MISSING = "privacy_mechanism_missing"
    PRIVACY_MECHANISM_MISMATCH = "privacy_mechanism_mismatch"
    NOISE_BELOW_CONFIGURED = "noise_below_configured"
    EPSILON_CLAIM_MISMATCH = "epsilon_claim_mismatch"
    ROUND_ALREADY_CHARGED = "round_already_charged"
    UPLOAD_BUSY = "upload_busy"
    PAYLOAD_INVALID = "payload_invalid"
    PAYLOAD_DIGEST_MISMATCH = "payload_digest_mismatch"
    CLAIM_MISMATCH = "claim_mismatch"
    # Homomorphic mode: the ciphertexts and key-ceremony messages (docs/homomorphic.md).
    CIPHERTEXT_WRONG_KEY = "ciphertext_wrong_key"
    CIPHERTEXT_REPLAYED = "ciphertext_replayed"
    CIPHERTEXT_MALFORMED = "ciphertext_malformed"
    # The silo's standing, taken at the round boundary (Silo spec.suspended, spec.identity.publicKey).
    SILO_SUSPENDED = "silo_suspended"
    KEY_RETIRED = "key_retired"
    # Compressed otherwise than the round published: another level, or other coordinates than its subset.
    COMPRESSION_MISMATCH = "compression_mismatch"
    SUBSET_MISMATCH = "subset_mismatch"
    # Found after the policy: the round closed while the policy decided.
    ROUND_CLOSED = "round_closed"
    # The gate's own: no engine answered within the retries (fail closed).
    POLICY_UNAVAILABLE = "policy_unavailable"
    # The gRPC edge's: a silo called faster than the job's spec.rateLimits allow (one record per window).
    RATE_LIMITED = "rate_limited"

    # --- Job decision (policies/fedsilo/job).
    EPSILON_ABOVE_ORGANIZATION_MAX = "epsilon_above_organization_max"
    TARGET_EPSILON_ABOVE_CEILING = "target_epsilon_above_ceiling"
    EPSILON_CEILING_MISSING = "epsilon_ceiling_missing"
    TOO_FEW_SILOS_FOR_MASKING = "too_few_silos_for_masking"


class Refusal(Exception):
    """An admission step's refusal: one ``Reason`` and the explanation for people."""

    def __init__(self, reason: Reason, explanation: str) -> None:
        self.reason = reason
        self.explanation = explanation
        super().__init__(f"{reason}: {explanation}")

    @property
    def text(self) -> str:
        """The reason as the decision and the audit log print it: ``"<code>: <explanation>"``."""
        return f"{self.reason}: {self.explanation}"
