"""Domain messages that cross a trust boundary, with their canonical signed encoding.

The sidecar builds ``UpdateMetadata``, ``EvaluationReport`` and ``LeaveNotice``, signs
their canonical bytes, and the aggregator parses the same bytes strictly (unknown or
missing fields, wrong types and non-finite numbers are refused) before it trusts any
value in them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal, cast

from pydantic import Field, TypeAdapter, ValidationError

from fedsilo.api import FedsiloVersion

from ._compression import RoundCompression
from ._strict import MessageError, StrictMessage

# Bounds no honest message comes near. They keep a hostile one from costing memory or
# audit space (a nonce of megabytes), from overflowing a sum (10**400 records), and from
# steering the hub's arithmetic (a negative count cancelling the others' total).
MAX_NAME_LENGTH: Final = 63  # a Kubernetes object name: a job or a silo
MAX_NONCE_LENGTH: Final = 128
MAX_ROUND: Final = 1_000_000
# Records behind one update or evaluation; the masked mode bounds a silo further at Join.
MAX_RECORDS: Final = 2**31 - 1
MAX_VECTOR_LENGTH: Final = 2**31 - 1
# A norm, loss or noise multiplier beyond this is no model's and no mechanism's.
MAX_MAGNITUDE: Final = 1e12
MAX_STEPS: Final = 10**9
# Why a silo leaves, as its audit record keeps it: a sentence, not a document.
MAX_LEAVE_REASON_LENGTH: Final = 200

# A Kubernetes object name: a job or a silo.
ObjectName = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
]
Nonce = Annotated[str, Field(min_length=1, max_length=MAX_NONCE_LENGTH, pattern=r"^[A-Za-z0-9_-]+$")]
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{1,64}$")]
RoundNumber = Annotated[int, Field(ge=0, le=MAX_ROUND)]
Records = Annotated[int, Field(ge=1, le=MAX_RECORDS)]
Magnitude = Annotated[float, Field(ge=0.0, le=MAX_MAGNITUDE)]


class DpSgdMechanism(StrictMessage):
    """Record-level DP: ``steps`` noisy SGD steps at ``sample_rate`` (``fedsilo.privacy.DpSgdEvent``)."""

    kind: Literal["dp_sgd"]
    noise_multiplier: Annotated[float, Field(gt=0.0, le=MAX_MAGNITUDE)]
    sample_rate: Annotated[float, Field(gt=0.0, le=1.0)]
    steps: Annotated[int, Field(ge=1, le=MAX_STEPS)]


class GaussianMechanism(StrictMessage):
    """Silo-level DP: ``count`` Gaussian releases (``fedsilo.privacy.GaussianEvent``)."""

    kind: Literal["gaussian"]
    noise_multiplier: Annotated[float, Field(gt=0.0, le=MAX_MAGNITUDE)]
    count: Annotated[int, Field(ge=1, le=MAX_STEPS)]


# The mechanism a DP update was charged for. Not strict at this level only so that the
# sidecar may pass the event's JSON form; each variant is itself strict.
MechanismDocument = Annotated[DpSgdMechanism | GaussianMechanism, Field(discriminator="kind")]
# An Annotated union is a valid TypeAdapter argument that mypy cannot type as such.
_MECHANISM: Final[TypeAdapter[DpSgdMechanism | GaussianMechanism]] = TypeAdapter(cast(Any, MechanismDocument))


def mechanism_claim(document: Mapping[str, Any]) -> DpSgdMechanism | GaussianMechanism:
    """The typed mechanism claim of an event's JSON form (``Mechanism.to_json()``); ``MessageError`` if malformed."""
    try:
        return _MECHANISM.validate_python(dict(document))
    except ValidationError as error:
        raise MessageError(f"mechanism: {error.errors(include_url=False, include_input=False)}") from None


class UpdateMetadata(StrictMessage):
    """What a silo asserts about one update; signed with the silo's Ed25519 key."""

    job: ObjectName
    round: RoundNumber
    silo: ObjectName
    nonce: Nonce
    l2_norm: Magnitude
    num_samples: Records
    vector_length: Annotated[int, Field(ge=1, le=MAX_VECTOR_LENGTH)]
    # uint8: a compressed payload's packed words (``fedsilo.compression``) or homomorphic mode's
    # framed ciphertexts (``fedsilo.he.wire``).
    dtype: Annotated[str, Field(pattern=r"^(float32|uint32|uint8)$")]
    payload_digest: Digest
    epsilon_round: Magnitude | None
    # What the update is compatible with: the silo's fedsilo release and the fingerprint of
    # its trainer's model architecture (``architecture_fingerprint``); the hub denies an
    # update whose runtime the job does not allow or whose model is another shape of model.
    fedsilo_version: FedsiloVersion
    architecture: Digest
    mechanism: MechanismDocument | None = None
    # The digest of the trainer's container image, where the silo knows it (a pod whose image
    # is pinned by digest); None in a local run or with an image named by tag only.
    trainer_image_digest: Digest | None = None
    # The round's compression the payload was made with (None: uncompressed); the hub refuses
    # an update whose settings, or shared subset, are not the round's.
    compression: RoundCompression | None = None

    def mechanism_document(self) -> dict[str, Any] | None:
        """The mechanism as the JSON object that was signed (what ``mechanism_from_json`` reads)."""
        return None if self.mechanism is None else self.mechanism.model_dump(mode="json")


class EvaluationReport(StrictMessage):
    """A silo's evaluation of the global model it received at the start of ``round``.

    ``stage`` says which model was scored: ``global``, the federated model (with the silo's
    own private parameters, when the job keeps some); ``personalized``, the silo's model after
    the job's local fine-tuning, reported once, in the closing evaluation. The claim is signed
    with the silo's key, so the hub's per-silo accuracy is each silo's own word: a silo can
    misreport its own score, never another's.
    """

    job: ObjectName
    round: RoundNumber
    silo: ObjectName
    nonce: Nonce
    loss: Magnitude
    accuracy: Annotated[float, Field(ge=0.0, le=1.0)]
    num_samples: Records
    stage: Literal["global", "personalized"] = "global"


class LeaveNotice(StrictMessage):
    """A stopping silo's word that it leaves the job in ``round`` (its sidecar got SIGTERM).

    Signed with the silo's key and sent by its own mTLS session, so only a silo can take
    itself out, never another; the nonce makes each notice usable once. ``reason`` goes into
    the hub's audit log and logs as it is: bounded, one line, printable characters only.
    """

    job: ObjectName
    round: RoundNumber
    silo: ObjectName
    nonce: Nonce
    reason: Annotated[str, Field(min_length=1, max_length=MAX_LEAVE_REASON_LENGTH, pattern=r"^[\x20-\x7e]+$")]


class GlobalModelClaim(StrictMessage):
    """What the hub signs about a global model it serves, with its audit key.

    ``round`` is the round that produced the model (0: the initial model), so a model is
    served only in the round after it (a sidecar refuses an old model replayed later);
    ``lineage_digest`` is ``fedsilo.registry.lineage_digest`` of the lineage the registry
    stores beside it (None for the initial model, which has none), so the registry's record
    is signed too and ``fedsilo models verify`` can check it offline.
    """

    job: ObjectName
    round: RoundNumber
    model_digest: Digest
    parent_digest: Digest | None
    lineage_digest: Digest | None


@dataclass(frozen=True)
class RoundPlan:
    """What the aggregator tells every silo about the next round."""

    round: int
    finished: bool = False
    evaluate_only: bool = False
    fit_config: dict[str, Any] = field(default_factory=dict)
    aggregation: str = "masked"
    fractional_bits: int = 0
    threshold: int = 0
    participants: tuple[str, ...] = ()
    model_digest: str = ""
    vector_length: int = 0
    failure: str = ""
    # ``GlobalModelClaim`` canonical bytes of the model this round starts from, and the hub's signature.
    model_claim: bytes = b""
    model_signature: bytes = b""
    # How this round's updates are compressed (None: they are not).
    compression: RoundCompression | None = None
    # Silo -> fingerprint of the identity key the hub verifies it with this round (key rotation).
    signing_keys: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyVerdict:
    """The aggregator's answer to one update or report."""

    accepted: bool
    reasons: tuple[str, ...] = ()
    policy_revision: str = ""
