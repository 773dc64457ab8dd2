"""Typed models of the ``FederatedJob`` and ``Silo`` resources.

Field descriptions here become the CRD descriptions that ``kubectl explain`` shows, so
they are written for a platform engineer reading the API for the first time. Field names
are snake_case in Python and camelCase on the wire, as Kubernetes conventions ask.
Cross-field rules that the API server can check carry a CEL expression in
``x-kubernetes-validations`` and are checked again here for the local run.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, NewType, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

API_GROUP = "fedsilo.io"
API_VERSION = f"{API_GROUP}/v1alpha1"

SiloName = NewType("SiloName", str)
RoundNumber = NewType("RoundNumber", int)

#: Patterns are written for both engines: Go's RE2 on the API server and Python's ``re`` here.
#: Only ASCII classes (``\w`` and ``\d`` match non-ASCII letters in Python), and Python checks
#: them with ``fullmatch`` (its ``$`` also matches before a trailing newline; RE2's does not).
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: A FederatedJob's name starts its children's names, and Service names must start with a letter.
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_FACTORY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")
#: Base64 (standard alphabet, padded) of exactly 32 bytes: 42 free characters, a 43rd whose low
#: 2 bits are zero, and one '='.
_ED25519_KEY = re.compile(r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_NAME = 63
#: Fewest silos a masked job can run with: a Shamir threshold is at least 2.
MASKED_MIN_SILOS = 2
#: The API server's cap on the total size of an object's annotations (keys and values).
MAX_ANNOTATIONS_BYTES = 256 * 1024
#: Feature values one silo's synthetic data may have (800 MB as float64): well within the trainer's default limit.
MAX_SYNTHETIC_VALUES = 100_000_000
DNS_LABEL_RULE = (
    "a DNS-1123 label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit"
)
JOB_NAME_RULE = "a DNS-1035 label: at most 63 lowercase letters, digits or '-', starting with a letter"


def _fullmatch(pattern: re.Pattern[str], value: str) -> bool:
    """Whether all of ``value`` matches: a trailing newline does not slip past ``$``."""
    return pattern.fullmatch(value) is not None


def _dns_label(value: str) -> str:
    if len(value) > MAX_NAME or not _fullmatch(_DNS_LABEL, value):
        raise ValueError(f"must be {DNS_LABEL_RULE}")
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]


def _qualified_name(key: str) -> str | None:
    """Why ``key`` is not a Kubernetes qualified name (label or annotation key), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in prefix:
        return "has more than one '/'"
    if prefix and (len(prefix) > 253 or not _fullmatch(_DNS_SUBDOMAIN, prefix)):
        return "has a prefix that is not a DNS subdomain (lowercase, at most 253 characters)"
    if not name or len(name) > MAX_NAME or not _fullmatch(_LABEL_NAME, name):
        return "needs a name of at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"
    return None


def _labels(value: dict[str, str]) -> dict[str, str]:
    for key, text in value.items():
        problem = _qualified_name(key)
        if problem:
            raise ValueError(f"label key {key!r} {problem}")
        if text and (len(text) > MAX_NAME or not _fullmatch(_LABEL_NAME, text)):
            raise ValueError(
                f"label {key!r} has a value that is not at most 63 letters, digits, '-', '_' or '.' "
                "starting and ending alphanumeric"
            )
    return value


def _annotations(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        problem = _qualified_name(key)
        if problem:
            raise ValueError(f"annotation key {key!r} {problem}")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in value.items())
    if size > MAX_ANNOTATIONS_BYTES:
        raise ValueError(f"annotations hold {size} bytes, more than the {MAX_ANNOTATIONS_BYTES} the API server allows")
    return value


class _Model(BaseModel):
    """Common model settings: camelCase aliases, unknown fields rejected, immutable, strict.

    Strict as the API server is: ``"15"`` is not a number and ``true`` is not 1 (a whole
    number is a number, as in JSON). Enum fields relax this only to read their string values.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
        strict=True,
    )


class ObjectMeta(_Model):
    """The subset of Kubernetes object metadata that fedsilo reads, checked as the API server checks it."""

    name: DnsLabel = Field(description="Object name, a DNS-1123 label.")
    namespace: DnsLabel | None = Field(default=None, description="Namespace of the object.")
    labels: Annotated[dict[str, str], AfterValidator(_labels)] = Field(default_factory=dict, description="Labels.")
    annotations: Annotated[dict[str, str], AfterValidator(_annotations)] = Field(
        default_factory=dict, description="Annotations."
    )
    model_config = ConfigDict(extra="allow")


class BuiltinModel(StrEnum):
    """Models fedsilo ships; each implements the same trainer interface a user model does."""

    LOGISTIC_REGRESSION = "logistic_regression"
    MLP = "mlp"
    CNN = "cnn"


class ModelSpec(_Model):
    """Which model the silos train: a built-in one or a user factory."""

    builtin: BuiltinModel | None = Field(
        default=None,
        strict=False,
        description=(
            "A built-in model: logistic_regression, mlp, or cnn (a small convolutional "
            "network for image-shaped data such as digits). Exactly one of builtin or "
            "factory is set."
        ),
    )
    factory: str | None = Field(
        default=None,
        pattern=_FACTORY.pattern,
        description=(
            "A user trainer client factory as 'package.module:callable'. The callable "
            "returns an object implementing fedsilo.trainer.TrainerClient; it must be "
            "importable in the trainer image."
        ),
    )
    hidden_sizes: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [64],
        max_length=4,
        description="Hidden layer widths of the mlp model.",
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Self:
        if (self.builtin is None) == (self.factory is None):
            raise ValueError("set exactly one of builtin or factory")
        return self


class DataSource(StrEnum):
    """Where the training data comes from."""

    SYNTHETIC = "synthetic"
    DIGITS = "digits"
    BREAST_CANCER = "breast_cancer"
    CSV = "csv"
    NPZ = "npz"


class PartitionScheme(StrEnum):
    """How a pooled data set is split across silos when it is simulated locally."""

    IID = "iid"
    DIRICHLET = "dirichlet"
    QUANTITY = "quantity"


class SyntheticSpec(_Model):
    """Parameters of the Synthetic(alpha, beta) generator of the FedProx paper (Li et al. 2020)."""

    alpha: float = Field(default=1.0, ge=0.0, le=100.0, description="Variance of per-silo model heterogeneity.")
    beta: float = Field(default=1.0, ge=0.0, le=100.0, description="Variance of per-silo feature heterogeneity.")
    num_features: int = Field(default=60, ge=2, le=10000, description="Input dimension.")
    num_classes: int = Field(default=10, ge=2, le=1000, description="Number of classes.")
    samples_per_silo: int = Field(default=600, ge=20, le=1_000_000, description="Mean number of records per silo.")

    @model_validator(mode="after")
    def _fits_a_node(self) -> Self:
        if self.num_features * self.samples_per_silo > MAX_SYNTHETIC_VALUES:
            raise ValueError(
                f"numFeatures x samplesPerSilo is above {MAX_SYNTHETIC_VALUES} values per silo, more than a "
                "trainer's memory holds; lower one of them"
            )
        return self


class PartitionSpec(_Model):
    """How records are dealt to silos in a local simulation."""

    scheme: PartitionScheme = Field(
        default=PartitionScheme.IID,
        strict=False,
        description="iid (uniform), dirichlet (label skew), or quantity (size skew).",
    )
    alpha: float = Field(
        default=0.5,
        gt=0.0,
        le=1000.0,
        description="Dirichlet concentration for dirichlet and quantity schemes; smaller is more skewed.",
    )


class DataSpec(_Model):
    """The data each silo trains on."""

    source: DataSource = Field(
        default=DataSource.SYNTHETIC,
        strict=False,
        description="synthetic, digits, breast_cancer (bundled, no download), csv or npz (a local path).",
    )
    path: str | None = Field(
        default=None,
        description=(
            "For csv or npz: the file to read. In a cluster each Silo's own spec.data.path "
            "wins, so every partner keeps its data in place."
        ),
    )
    label_column: str = Field(default="label", description="For csv: the name of the column holding class labels.")
    synthetic: SyntheticSpec = Field(default_factory=SyntheticSpec, description="For synthetic: generator parameters.")
    partition: PartitionSpec = Field(
        default_factory=PartitionSpec,
        description="How a pooled data set is split across silos (local simulation only).",
    )
    test_fraction: float = Field(
        default=0.2,
        gt=0.0,
        lt=0.9,
        description="Fraction of each silo's records held out for federated evaluation.",
    )

    @model_validator(mode="after")
    def _path_for_files(self) -> Self:
        if self.source in (DataSource.CSV, DataSource.NPZ) and not self.path:
            raise ValueError(f"data.path is required when data.source is {self.source.value}")
        return self


class TrainingSpec(_Model):
    """Local training on each silo in every round."""

    local_epochs: int = Field(default=1, ge=1, le=1000, description="Epochs per round.")
    batch_size: int = Field(default=32, ge=1, le=65536, description="Mini-batch size.")
    learning_rate: float = Field(default=0.05, gt=0.0, le=10.0, description="Client SGD step size.")
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0, description="Client SGD momentum.")
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0, description="Client L2 penalty.")


class StrategyName(StrEnum):
    """Server strategies."""

    FEDAVG = "fedavg"
    FEDPROX = "fedprox"
    FEDADAM = "fedadam"
    # Byzantine-robust rules: they need every update in the clear (aggregation.mode plain).
    MEDIAN = "median"
    TRIMMED_MEAN = "trimmed_mean"
    MULTIKRUM = "multikrum"
    CENTERED_CLIPPING = "centered_clipping"

    @property
    def robust(self) -> bool:
        """Whether the rule combines the individual updates, which only plain aggregation shows the hub."""
        return self in _ROBUST_STRATEGIES


#: Strategies that need each silo's update, not the sum: masked aggregation cannot serve them.
_ROBUST_STRATEGIES = frozenset(
    {StrategyName.MEDIAN, StrategyName.TRIMMED_MEAN, StrategyName.MULTIKRUM, StrategyName.CENTERED_CLIPPING}
)


class StrategySpec(_Model):
    """How the server turns the aggregate into the next global model."""

    name: StrategyName = Field(
        default=StrategyName.FEDAVG,
        strict=False,
        description=(
            "fedavg (sample-weighted mean), fedprox (fedavg plus a proximal term on the "
            "clients), fedadam (Adam on the server over the mean update), or a Byzantine-robust "
            "rule over the individual updates, which needs aggregation.mode plain: median "
            "(coordinate-wise median), trimmed_mean (coordinate-wise mean without the "
            "trimFraction largest and smallest values), multikrum (mean of the krumSelected "
            "updates closest to their neighbours, tolerating byzantineSilos attackers), or "
            "centered_clipping (clippingIterations steps of the mean of updates clipped to "
            "clippingRadius around the previous aggregate)."
        ),
    )
    proximal_mu: float = Field(default=0.01, ge=0.0, le=100.0, description="FedProx proximal coefficient mu.")
    server_learning_rate: float = Field(
        default=1.0,
        gt=0.0,
        le=100.0,
        description="Server step size: 1.0 is plain fedavg; fedadam wants a small one such as 0.01.",
    )
    beta1: float = Field(default=0.9, ge=0.0, lt=1.0, description="fedadam first-moment decay.")
    beta2: float = Field(default=0.99, ge=0.0, lt=1.0, description="fedadam second-moment decay.")
    tau: float = Field(default=1e-3, gt=0.0, le=1.0, description="fedadam adaptivity (epsilon).")
    trim_fraction: float = Field(
        default=0.2,
        ge=0.0,
        lt=0.5,
        description=(
            "trimmed_mean: the fraction of updates dropped at each end of every coordinate "
            "(floor(trimFraction x updates) largest and as many smallest); 0 is the plain mean."
        ),
    )
    byzantine_silos: int = Field(
        default=1,
        ge=0,
        le=1000,
        description=(
            "multikrum: f, the number of attacking silos the rule must tolerate; each update is "
            "scored by its distance to its n - f - 2 nearest others. Needs minSilos >= 2f + 3."
        ),
    )
    krum_selected: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description=(
            "multikrum: m, how many best-scored updates are averaged; at most minSilos - byzantineSilos. "
            "Default: n - f of the round's n accepted updates."
        ),
    )
    clipping_radius: float = Field(
        default=1.0,
        gt=0.0,
        le=1e6,
        description="centered_clipping: tau, the L2 radius each update's distance to the running center is clipped to.",
    )
    clipping_iterations: int = Field(
        default=3,
        ge=1,
        le=100,
        description="centered_clipping: how many clip-and-average steps move the center each round.",
    )


class AggregationMode(StrEnum):
    """How updates are combined. Masked keeps every single update hidden from the hub."""

    MASKED = "masked"
    PLAIN = "plain"


class AggregationSpec(_Model):
    """Secure aggregation settings."""

    mode: AggregationMode = Field(
        default=AggregationMode.MASKED,
        strict=False,
        description=(
            "masked: pairwise-masked secure aggregation (Bonawitz et al. 2017); the hub only "
            "sees the sum. plain: updates are summed in the clear (testing only)."
        ),
    )
    threshold: int | None = Field(
        default=None,
        ge=2,
        le=10000,
        description=("Shamir threshold t: survivors needed to unmask. Defaults to more than half of the job's silos."),
    )
    clip_range: float = Field(
        default=4.0,
        gt=0.0,
        le=1e6,
        description="Every coordinate of an update is clipped to [-clipRange, clipRange] before fixed-point encoding.",
    )


class PrivacyMode(StrEnum):
    """Differential privacy mode."""

    NONE = "none"
    RECORD = "record"
    SILO = "silo"


class PrivacySpec(_Model):
    """Differential privacy: record-level DP-SGD on the trainer or silo-level noise on the sidecar."""

    mode: PrivacyMode = Field(
        strict=False,
        description=(
            "none, record (DP-SGD per record in the trainer), or silo (Gaussian noise on each clipped update). "
            "Required whenever the privacy block is written, so a block without it is never read as no privacy."
        ),
    )
    noise_multiplier: float | None = Field(
        default=None,
        gt=0.0,
        le=1000.0,
        description="Gaussian noise multiplier sigma. Set this or targetEpsilon.",
    )
    target_epsilon: float | None = Field(
        default=None,
        gt=0.0,
        le=1000.0,
        description="Calibrate the noise so the whole job spends at most this epsilon.",
    )
    max_grad_norm: float = Field(
        default=1.0, gt=0.0, le=1e6, description="Per-record gradient clipping bound (record mode)."
    )
    delta: float = Field(default=1e-5, gt=0.0, lt=1.0, description="The delta of (epsilon, delta)-DP.")
    accountant: Literal["rdp", "pld"] = Field(
        default="rdp", description="Privacy accountant: rdp (Renyi DP) or pld (privacy loss distributions, tighter)."
    )

    @model_validator(mode="after")
    def _noise_source(self) -> Self:
        if self.mode is not PrivacyMode.NONE and (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ValueError("set exactly one of noiseMultiplier or targetEpsilon when mode is not none")
        if self.mode is PrivacyMode.NONE and (self.noise_multiplier is not None or self.target_epsilon is not None):
            raise ValueError(
                "noiseMultiplier and targetEpsilon take effect only with mode record or silo; set the mode, "
                "or remove them"
            )
        return self


class DataClass(StrEnum):
    """Sensitivity class of the job's data; policies decide what each class allows."""

    PUBLIC = "public"
    INTERNAL = "internal"
    SENSITIVE = "sensitive"


#: A fedsilo release as ``fedsilo.__version__`` spells it; the same pattern as the signed update claims.
FedsiloVersion = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*([a-z]+[0-9]*)?(\.(post|dev)[0-9]+)?$"),
]


class PolicySpec(_Model):
    """Limits every update must meet to enter the aggregate."""

    norm_cap: float = Field(
        default=10.0,
        gt=0.0,
        le=1e6,
        description="Maximum L2 norm of one update; the sidecar clips to it and the policy denies larger ones.",
    )
    max_epsilon: float | None = Field(
        default=None,
        gt=0.0,
        le=1000.0,
        description="Job-wide privacy ceiling per silo; an update that would cross it is denied.",
    )
    data_class: DataClass = Field(
        default=DataClass.INTERNAL, strict=False, description="public, internal or sensitive."
    )
    min_samples: int = Field(default=1, ge=1, le=10**9, description="Minimum records behind one update.")
    fedsilo_versions: list[FedsiloVersion] | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description=(
            'fedsilo releases whose sidecars may send updates, e.g. ["0.1.0"]; an update signed by '
            "another release is denied (update_incompatible) before its payload is read. Unset: any release."
        ),
    )


#: A Kubernetes quantity as fedsilo accepts it: a decimal number and an optional unit.
_QUANTITY = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,3})?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_UNITS = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
}


def quantity(text: str) -> Decimal:
    """The value of a quantity :data:`_QUANTITY` accepts, as Kubernetes' ``quantity()`` reads it."""
    number = text.rstrip("mkMGTi")
    return Decimal(number) * _UNITS[text[len(number) :]]


class ResourceAmounts(_Model):
    """CPU and memory of one container, as Kubernetes quantities."""

    cpu: str | None = Field(
        default=None, pattern=_QUANTITY.pattern, description="CPU cores, e.g. 250m (a quarter core) or 2."
    )
    memory: str | None = Field(default=None, pattern=_QUANTITY.pattern, description="Memory, e.g. 512Mi or 2Gi.")

    def render(self) -> dict[str, str]:
        """The amounts as a pod spec writes them, unset ones left out."""
        return {key: value for key, value in (("cpu", self.cpu), ("memory", self.memory)) if value is not None}


class ContainerResources(_Model):
    """Requests (what the scheduler reserves) and limits (what the container may use) of one container."""

    requests: ResourceAmounts = Field(description="Reserved for the container.")
    limits: ResourceAmounts = Field(description="The most the container may use; above the memory limit it is killed.")

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Self:
        for name in ("cpu", "memory"):
            request, limit = getattr(self.requests, name), getattr(self.limits, name)
            if request is not None and limit is not None and quantity(request) > quantity(limit):
                raise ValueError(
                    f"requests.{name} ({request}) is above limits.{name} ({limit}); no pod can run so: "
                    "raise the limit or lower the request"
                )
        return self

    def render(self) -> dict[str, dict[str, str]]:
        """The ``resources`` of a container spec."""
        return {"requests": self.requests.render(), "limits": self.limits.render()}


def _resources(requests: tuple[str, str], limits: tuple[str, str]) -> ContainerResources:
    return ContainerResources(
        requests=ResourceAmounts(cpu=requests[0], memory=requests[1]),
        limits=ResourceAmounts(cpu=limits[0], memory=limits[1]),
    )


#: Every pod the operator creates gets requests and limits, so no job can starve a node unseen.
DEFAULT_AGGREGATOR_RESOURCES = _resources(("250m", "512Mi"), ("2", "2Gi"))
DEFAULT_SIDECAR_RESOURCES = _resources(("100m", "256Mi"), ("1", "1Gi"))
DEFAULT_TRAINER_RESOURCES = _resources(("500m", "1Gi"), ("4", "8Gi"))


def _describe_default(resources: ContainerResources) -> str:
    return (
        f"Default: requests cpu {resources.requests.cpu}, memory {resources.requests.memory}; "
        f"limits cpu {resources.limits.cpu}, memory {resources.limits.memory}."
    )


class PodResources(_Model):
    """Resources of the containers the operator creates for this job; a container left out keeps its default."""

    aggregator: ContainerResources = Field(
        default=DEFAULT_AGGREGATOR_RESOURCES,
        description="The hub's aggregator container. " + _describe_default(DEFAULT_AGGREGATOR_RESOURCES),
    )
    sidecar: ContainerResources = Field(
        default=DEFAULT_SIDECAR_RESOURCES,
        description="Each silo's sidecar container. " + _describe_default(DEFAULT_SIDECAR_RESOURCES),
    )
    trainer: ContainerResources = Field(
        default=DEFAULT_TRAINER_RESOURCES,
        description="Each silo's trainer container. " + _describe_default(DEFAULT_TRAINER_RESOURCES),
    )


class RollbackSpec(_Model):
    """Go back to an earlier round's model: the aggregator restarts from that round's checkpoint."""

    to_round: int = Field(
        ge=0,
        le=100000,
        description="The completed round whose checkpointed model the job goes on from; later rounds are "
        "discarded (kept aside on the aggregator's volume) and trained again.",
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        description="Why; recorded with the rollback in the audit log and the rollback report.",
    )


class FederatedJobSpec(_Model):
    """What to train, with whom, and under which guarantees."""

    silos: list[DnsLabel] = Field(
        min_length=1,
        max_length=1000,
        description="Names of the Silo objects taking part.",
    )
    min_silos: int = Field(
        default=2,
        ge=1,
        le=1000,
        description="Quorum: a round closes with at least this many accepted updates, or fails.",
    )
    rounds: int = Field(default=10, ge=1, le=100000, description="Number of federated rounds.")
    round_timeout_seconds: int = Field(
        default=300,
        ge=5,
        le=86400,
        description="A round waiting longer than this closes with the silos that answered.",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed for data, init and sampling.")
    model: ModelSpec = Field(description="The model to train.")
    data: DataSpec = Field(default_factory=DataSpec, description="The training data.")
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="Local training.")
    strategy: StrategySpec = Field(default_factory=StrategySpec, description="Server strategy.")
    aggregation: AggregationSpec = Field(default_factory=AggregationSpec, description="Secure aggregation.")
    privacy: PrivacySpec = Field(
        default_factory=lambda: PrivacySpec(mode=PrivacyMode.NONE),
        description="Differential privacy. Default: none.",
    )
    policy: PolicySpec = Field(default_factory=PolicySpec, description="Update admission limits.")
    resources: PodResources = Field(
        default_factory=PodResources,
        description="CPU and memory of the pods the operator creates for this job.",
    )
    rollback: RollbackSpec | None = Field(
        default=None,
        description="Roll the job back to an earlier round (docs/operations.md). Setting or changing it restarts "
        "the aggregator, which records the rollback in the audit log once and retrains from that round. "
        "Not for jobs with differential privacy.",
    )

    @model_validator(mode="after")
    def _cross_field(self) -> Self:
        if len(set(self.silos)) != len(self.silos):
            duplicated = sorted({s for s in self.silos if self.silos.count(s) > 1})
            raise ValueError(f"silos lists {', '.join(duplicated)} more than once")
        if self.min_silos > len(self.silos):
            raise ValueError(f"minSilos ({self.min_silos}) is above the number of silos ({len(self.silos)})")
        if self.rollback is not None and self.rollback.to_round >= self.rounds:
            raise ValueError(
                f"rollback.toRound ({self.rollback.to_round}) must be below rounds ({self.rounds}): a job rolled back "
                "to its last round has nothing to train again"
            )
        if self.rollback is not None and self.privacy.mode is not PrivacyMode.NONE:
            raise ValueError(
                "rollback does not combine with differential privacy: the discarded rounds were released and "
                "charged, and training them again would release them twice; start a new FederatedJob instead"
            )
        if self.privacy.mode is PrivacyMode.RECORD and self.strategy.name is StrategyName.FEDPROX:
            raise ValueError(
                "privacy.mode record does not combine with strategy fedprox (per-record clipping would skip "
                "the proximal term); use fedavg or fedadam"
            )
        if self.aggregation.mode is AggregationMode.MASKED and len(self.silos) < MASKED_MIN_SILOS:
            raise ValueError(
                f"masked aggregation needs at least {MASKED_MIN_SILOS} silos (a sum of one update hides nothing "
                "and its Shamir threshold cannot be met); name more silos, or choose aggregation.mode plain"
            )
        strategy = self.strategy
        if strategy.name.robust and self.aggregation.mode is not AggregationMode.PLAIN:
            raise ValueError(
                f"strategy.name {strategy.name.value} needs each silo's update in the clear, which masked "  # noqa: S608 - not SQL
                "aggregation hides from the hub; set aggregation.mode plain, or choose fedavg, fedprox or fedadam"
            )
        if strategy.name is StrategyName.MULTIKRUM:
            if self.min_silos < 2 * strategy.byzantine_silos + 3:
                raise ValueError(
                    f"strategy multikrum with byzantineSilos {strategy.byzantine_silos} needs minSilos >= "
                    f"{2 * strategy.byzantine_silos + 3} (2f + 3); raise minSilos or lower strategy.byzantineSilos"
                )
            if (
                strategy.krum_selected is not None
                and strategy.krum_selected > self.min_silos - strategy.byzantine_silos
            ):
                raise ValueError(
                    f"strategy.krumSelected ({strategy.krum_selected}) is above minSilos - byzantineSilos "
                    f"({self.min_silos - strategy.byzantine_silos}); lower strategy.krumSelected"
                )
        threshold = self.aggregation.threshold
        if threshold is not None and threshold > len(self.silos):
            raise ValueError(f"aggregation.threshold ({threshold}) is above the number of silos ({len(self.silos)})")
        return self

    def secagg_threshold(self) -> int:
        """The Shamir threshold t: configured, or the smallest strict majority."""
        if self.aggregation.threshold is not None:
            return self.aggregation.threshold
        return max(2, len(self.silos) // 2 + 1)


class FederatedJob(_Model):
    """A federated training job."""

    api_version: Literal["fedsilo.io/v1alpha1"] = Field(description="fedsilo.io/v1alpha1")
    kind: Literal["FederatedJob"] = Field(description="FederatedJob")
    metadata: ObjectMeta
    spec: FederatedJobSpec
    status: dict[str, Any] | None = Field(default=None, description="Written by the operator.")

    @model_validator(mode="after")
    def _job_name(self) -> Self:
        if not _fullmatch(_DNS_1035_LABEL, self.metadata.name):
            raise ValueError(f"metadata.name must be {JOB_NAME_RULE}")
        return self


class SiloIdentity(_Model):
    """The silo's registered public identity."""

    public_key: str | None = Field(
        default=None,
        pattern=_ED25519_KEY.pattern,
        description=(
            "The silo's Ed25519 public key, base64 (32 bytes). Updates signed by any other "
            "key are rejected. Written by 'fedsilo identity create'; the private half never "
            "leaves the silo."
        ),
    )


class SiloDataSpec(_Model):
    """Where this silo's records are."""

    path: str | None = Field(
        default=None,
        description="A csv or npz file inside the silo; overrides the job's data.path for this silo.",
    )
    volume_claim: str | None = Field(
        default=None,
        description="In a cluster: the PersistentVolumeClaim holding the data, mounted read-only.",
    )


class SiloSpec(_Model):
    """A partner institution that trains on its own data."""

    display_name: str | None = Field(
        default=None, max_length=256, description="Human-readable name of the institution."
    )
    identity: SiloIdentity = Field(default_factory=SiloIdentity, description="The silo's registered public identity.")
    data: SiloDataSpec = Field(default_factory=SiloDataSpec, description="The silo's data.")
    max_epsilon: float | None = Field(
        default=None,
        gt=0.0,
        le=1000.0,
        description="Lifetime privacy ceiling of this silo across all jobs.",
    )


#: On a Silo: the namespace its pods and identity Secret live in (default: the Silo's own).
WORKLOAD_NAMESPACE_ANNOTATION = f"{API_GROUP}/workload-namespace"
#: Namespaces no Silo may move into: the cluster's own (``kube-*``) and ``default``.
SYSTEM_NAMESPACE_PREFIX = "kube-"
SYSTEM_NAMESPACES = ("default",)


def workload_namespace_problem(workload: str, own_namespace: str | None) -> str | None:
    """Why ``workload`` can never be a Silo's workload namespace, or None.

    The same checks as the ValidatingAdmissionPolicy in ``deploy/admission`` (which the
    operator repeats for clusters without it); consent is the operator's check.
    """
    where = f"metadata.annotations[{WORKLOAD_NAMESPACE_ANNOTATION}]"
    if len(workload) > MAX_NAME or not _fullmatch(_DNS_LABEL, workload):
        return f"{where} is not a namespace name (a DNS-1123 label of at most 63 characters); correct it or remove it"
    if workload != own_namespace and (workload in SYSTEM_NAMESPACES or workload.startswith(SYSTEM_NAMESPACE_PREFIX)):
        return (
            f"{where} names a system namespace (kube-*, default); a silo's pods and keys belong in a namespace "
            "of the partner's own"
        )
    return None


class Silo(_Model):
    """A silo taking part in federated jobs."""

    api_version: Literal["fedsilo.io/v1alpha1"] = Field(description="fedsilo.io/v1alpha1")
    kind: Literal["Silo"] = Field(description="Silo")
    metadata: ObjectMeta
    spec: SiloSpec = Field(default_factory=SiloSpec)
    status: dict[str, Any] | None = Field(default=None, description="Written by the operator.")

    @model_validator(mode="after")
    def _workload_namespace(self) -> Self:
        workload = self.metadata.annotations.get(WORKLOAD_NAMESPACE_ANNOTATION)
        problem = None if workload is None else workload_namespace_problem(workload, self.metadata.namespace)
        if problem is not None:
            raise ValueError(problem)
        return self
