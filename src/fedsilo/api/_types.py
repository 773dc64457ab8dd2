"""Typed models of the ``FederatedJob`` and ``Silo`` resources.

Field descriptions here become the CRD descriptions that ``kubectl explain`` shows, so
they are written for a platform engineer reading the API for the first time. Field names
are snake_case in Python and camelCase on the wire, as Kubernetes conventions ask.
Cross-field rules that the API server can check carry a CEL expression in
``x-kubernetes-validations`` and are checked again here for the local run.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, NewType, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
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


class Normalization(StrEnum):
    """Normalization layers of the built-in mlp and cnn models (FedBN keeps them in each silo)."""

    NONE = "none"
    BATCH = "batch"
    LAYER = "layer"


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
    normalization: Normalization = Field(
        default=Normalization.NONE,
        strict=False,
        description=(
            "Normalization after each hidden layer of the built-in mlp and cnn models: none, batch "
            "(batch normalization; not with privacy.mode record) or layer. personalization.privateNormalization "
            "keeps these layers in each silo (FedBN)."
        ),
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Self:
        if (self.builtin is None) == (self.factory is None):
            raise ValueError("set exactly one of builtin or factory")
        if self.normalization is not Normalization.NONE and self.builtin not in (BuiltinModel.MLP, BuiltinModel.CNN):
            raise ValueError("normalization applies to the built-in mlp and cnn models only; remove it")
        return self


class DataSource(StrEnum):
    """Where the training data comes from."""

    SYNTHETIC = "synthetic"
    DIGITS = "digits"
    BREAST_CANCER = "breast_cancer"
    CSV = "csv"
    NPZ = "npz"
    TABULAR = "tabular"


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


class TabularSpec(_Model):
    """A generated tabular workload: features on very different scales, integer-coded categories, label skew by partition."""

    records_per_silo: int = Field(
        default=4000, ge=20, le=1_000_000, description="Records generated per silo (pooled, then partitioned)."
    )
    num_features: int = Field(default=12, ge=2, le=1000, description="Numeric features, on scales from 1e-2 to 1e4.")
    num_categorical: int = Field(
        default=2, ge=0, le=16, description="Integer-coded categorical features (codes 0..7) after the numeric ones."
    )
    num_classes: int = Field(default=4, ge=2, le=100, description="Number of classes.")
    missing_fraction: float = Field(
        default=0.0,
        ge=0.0,
        # Inclusive: the API server checks a default of 0 against an exclusive 0.5 as integers (0 < 0).
        le=0.5,
        description="Fraction of numeric values left missing (NaN); needs preprocessing.impute to train.",
    )

    @model_validator(mode="after")
    def _fits_a_node(self) -> Self:
        if (self.num_features + self.num_categorical) * self.records_per_silo > MAX_SYNTHETIC_VALUES:
            raise ValueError(
                f"(numFeatures + numCategorical) x recordsPerSilo is above {MAX_SYNTHETIC_VALUES} values per silo, "
                "more than a trainer's memory holds; lower one of them"
            )
        return self


class Scaling(StrEnum):
    """How numeric features are scaled before training."""

    NONE = "none"
    SILO = "silo"
    STANDARDIZE = "standardize"
    MINMAX = "minmax"


class Imputation(StrEnum):
    """What a missing numeric value becomes."""

    NONE = "none"
    MEAN = "mean"
    MEDIAN = "median"


#: Most categorical columns and category codes a job may declare (each code is one masked count).
MAX_CATEGORICAL_COLUMNS = 64
MAX_CATEGORY_CODES = 256


def _unique_columns(value: list[int]) -> list[int]:
    if len(set(value)) != len(value):
        duplicated = sorted({c for c in value if value.count(c) > 1})
        raise ValueError(f"lists column {', '.join(map(str, duplicated))} more than once")
    return value


class PreprocessingSpec(_Model):
    """Preprocessing every silo and the centralized baseline apply identically, fitted by federated statistics."""

    scaling: Scaling = Field(
        strict=False,
        description=(
            "Required. standardize (global mean and standard deviation) or minmax (global noise-protected "
            "range to [0, 1]), both fitted by the statistics phase through masked aggregation; silo (each "
            "silo standardizes with its own statistics: the same raw value then means different things in "
            "different silos); or none (raw values)."
        ),
    )
    categorical: Annotated[list[Annotated[int, Field(ge=0, le=100_000)]], AfterValidator(_unique_columns)] = Field(
        default_factory=list,
        max_length=MAX_CATEGORICAL_COLUMNS,
        description=(
            "Feature positions (0-based, label column removed) holding integer category codes; each becomes "
            "one-hot columns over the shared vocabulary the statistics phase finds (codes seen at least "
            "minCount times in all silos together)."
        ),
    )
    max_categories: int = Field(
        default=32,
        ge=2,
        le=MAX_CATEGORY_CODES,
        description="Category codes are 0..maxCategories-1; other values count as one 'other' category.",
    )
    impute: Imputation = Field(
        default=Imputation.NONE,
        strict=False,
        description="Missing numeric values (empty csv cells, NaN) become the global mean or median; none refuses them.",
    )
    min_count: int = Field(
        default=10,
        ge=1,
        le=10**9,
        description=(
            "A silo with fewer training records takes no part in the statistics (its reason is reported), "
            "and a histogram bin or category with fewer records in total is suppressed."
        ),
    )
    bins: int = Field(default=32, ge=4, le=512, description="Histogram bins per numeric feature.")
    epsilon: float | None = Field(
        default=None,
        gt=0.0,
        le=100.0,
        description=(
            "Differential privacy for the statistics: Gaussian noise calibrated so both histogram passes "
            "together cost each silo this epsilon, charged to its ledger. Unset: no noise (exact totals)."
        ),
    )
    delta: float = Field(default=1e-5, gt=0.0, lt=1.0, description="The delta of the statistics' (epsilon, delta)-DP.")

    @property
    def federated(self) -> bool:
        """Whether the statistics phase must run before training."""
        return (
            self.scaling in (Scaling.STANDARDIZE, Scaling.MINMAX)
            or bool(self.categorical)
            or self.impute is not Imputation.NONE
        )

    @property
    def private(self) -> bool:
        """Whether the statistics phase runs with DP noise, charged to every silo's ledger."""
        return self.federated and self.epsilon is not None


class DataSpec(_Model):
    """The data each silo trains on."""

    source: DataSource = Field(
        default=DataSource.SYNTHETIC,
        strict=False,
        description=(
            "synthetic, digits, breast_cancer (bundled, no download), tabular (generated: features on very "
            "different scales, thousands of records per silo), csv or npz (a local path)."
        ),
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
    tabular: TabularSpec = Field(default_factory=TabularSpec, description="For tabular: generator parameters.")
    preprocessing: PreprocessingSpec | None = Field(
        default=None,
        description=(
            "Preprocessing fitted by a federated statistics phase before training (docs/statistics.md). Unset: "
            "breast_cancer, csv and npz are standardized per silo, each with its own statistics, and a run "
            "says so; digits, synthetic and tabular stay raw."
        ),
    )
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


def _once_each(names: list[str]) -> list[str]:
    """Refuse a list that names one entry twice (the API server's list-type ``set`` does the same)."""
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"names {', '.join(twice)} more than once")
    return names


#: A state-dict entry or module of the model: ``layers.4``, ``head.2.weight``.
_PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
MAX_PRIVATE_PARAMETERS = 64


class PersonalizationSpec(_Model):
    """Parameters that never leave a silo, and local fine-tuning after the last round.

    A private parameter is trained in its silo and never sent: the sidecar refuses any update
    that carries one, and the hub's global model and its compatibility check cover only the
    shared parameters. Each silo's final model is the shared parameters with its own private
    ones, fine-tuned on its own data when fineTuneEpochs is set.
    """

    private_parameters: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=256, pattern=_PARAMETER_NAME.pattern)]],
        AfterValidator(_once_each),
    ] = Field(
        default_factory=list,
        max_length=MAX_PRIVATE_PARAMETERS,
        description=(
            "Names of the model's parameters or modules (a module keeps all of its parameters) that stay "
            "in each silo, as the model's state dict names them, e.g. layers.4 or head.2.weight. Each must "
            "name something in the model; the trainer and the hub refuse the job otherwise."
        ),
    )
    private_head: bool = Field(
        default=False,
        description="FedPer: the model's last layer (its classifier head) stays in each silo.",
    )
    private_normalization: bool = Field(
        default=False,
        description="FedBN: every normalization layer (its scale, shift and running statistics) stays in each silo.",
    )
    fine_tune_epochs: int = Field(
        default=0,
        ge=0,
        le=1000,
        description=(
            "Epochs each silo trains the final model on its own data after the last round; nothing of it is "
            "sent. The report shows each silo's accuracy before and after."
        ),
    )
    fine_tune_learning_rate: float | None = Field(
        default=None,
        gt=0.0,
        le=10.0,
        description="Step size of the fine-tuning; default: training.learningRate.",
    )

    @model_validator(mode="after")
    def _does_something(self) -> Self:
        if not (self.private_parameters or self.private_head or self.private_normalization or self.fine_tune_epochs):
            raise ValueError(
                "personalization changes nothing: set privateParameters, privateHead, privateNormalization or "
                "fineTuneEpochs, or remove it"
            )
        return self

    @property
    def keeps_private(self) -> bool:
        """Whether some parameters never leave a silo."""
        return bool(self.private_parameters or self.private_head or self.private_normalization)

    @staticmethod
    def marks(entry: str, parameter: str) -> bool:
        """Whether the ``privateParameters`` entry ``entry`` marks ``parameter``: itself, or a module holding it."""
        return parameter == entry or parameter.startswith(entry + ".")


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
    # Majority vote of the updates' signs (strategies/_sign_vote.py): plain, or tallied under masking.
    SIGN_VOTE = "sign_vote"

    @property
    def robust(self) -> bool:
        """Whether the rule combines the individual updates (in plain mode the hub keeps every one)."""
        return self in _ROBUST_STRATEGIES

    @property
    def needs_cleartext(self) -> bool:
        """Whether the rule needs each update in the clear: every robust rule but the vote, whose masked sum is the tally."""
        return self.robust and self is not StrategyName.SIGN_VOTE


#: Strategies that need each silo's update, not the sum: masked aggregation cannot serve them.
_ROBUST_STRATEGIES = frozenset(
    {
        StrategyName.MEDIAN,
        StrategyName.TRIMMED_MEAN,
        StrategyName.MULTIKRUM,
        StrategyName.CENTERED_CLIPPING,
        # The vote needs only the sum of signs: masked rounds tally them (``needs_cleartext``).
        StrategyName.SIGN_VOTE,
    }
)


#: sign_vote's step per round when the job sets none.
DEFAULT_SIGN_STEP_SIZE = 0.01


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
            "clippingRadius around the previous aggregate); or sign_vote (every coordinate moves "
            "signStepSize in the direction most silos' updates point; one vote per silo), in plain or "
            "masked mode, where the hub sees only the range-checked tally of the votes."
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
    # Optional, not defaulted: a rendered manifest writes every field it has, and a default here
    # would read back as set on every other strategy, which the spec refuses.
    sign_step_size: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description=(
            "sign_vote: how far each coordinate of the model moves per round in the direction of the "
            f"majority vote (the step is exactly this, whatever the silos send; default {DEFAULT_SIGN_STEP_SIZE}). "
            "Only for sign_vote."
        ),
    )

    @property
    def sign_step(self) -> float:
        """sign_vote's step: the one set, or the default."""
        return DEFAULT_SIGN_STEP_SIZE if self.sign_step_size is None else self.sign_step_size


class AggregationMode(StrEnum):
    """How updates are combined. Masked keeps every single update hidden from the hub."""

    MASKED = "masked"
    PLAIN = "plain"
    HOMOMORPHIC = "homomorphic"


#: Why a step size for the vote is refused with another strategy (CEL and the models say the same).
SIGN_STEP_SIZE_MESSAGE = (
    "strategy.signStepSize is the step of strategy sign_vote only; set strategy.name sign_vote, or remove "
    "strategy.signStepSize (the other strategies step by serverLearningRate)"
)


#: Why a homomorphic job needs two silos, and why it refuses fedadam (CEL and the models say the same).
HOMOMORPHIC_MIN_SILOS_MESSAGE = (
    f"homomorphic aggregation needs at least {MASKED_MIN_SILOS} silos (with one, its key share is the whole "
    "key and the sum is its update); name more silos, or choose aggregation.mode plain"
)
HOMOMORPHIC_FEDADAM_MESSAGE = (
    "strategy fedadam does not combine with aggregation.mode homomorphic: its server optimizer keeps "
    "per-coordinate state over plaintext mean updates, while homomorphic mode only admits strategies whose "
    "step is the decrypted mean itself (fedavg, fedprox); choose fedavg or fedprox, or aggregation.mode masked"
)
SIGN_VOTE_HOMOMORPHIC_MESSAGE = (
    "strategy sign_vote does not combine with aggregation.mode homomorphic: CKKS sums approximate floats, "
    "so the hub could not check the exact range of the vote's tally; use aggregation.mode masked (the masked "
    "tally) or plain"
)
SIGN_VOTE_COMPRESSION_MESSAGE = (
    "spec.compression does not combine with strategy sign_vote under aggregation.mode masked: the vote is "
    "its own 2-bit packing (one level per coordinate, words sized for the silos' tally); remove spec.compression"
)
HOMOMORPHIC_COMPRESSION_MESSAGE = (
    "spec.compression does not combine with aggregation.mode homomorphic: CKKS packs float values into "
    "ciphertexts of a fixed size, so quantized or sparse updates would not shrink them; remove spec.compression "
    "or use aggregation.mode masked"
)


class NeighbourGraphKind(StrEnum):
    """Which silos of a masked round agree pairwise masks and hold each other's Shamir shares."""

    COMPLETE = "complete"
    SPARSE = "sparse"


class HubModel(StrEnum):
    """What the hub may do beyond following the protocol, for the sparse graph's threshold."""

    #: It follows the protocol and tries to learn from what it sees (honest but curious).
    CURIOUS = "curious"
    #: It may also tell silos different stories about who dropped out (the paper's semi-malicious server).
    SEMI_MALICIOUS = "semiMalicious"


#: Why a sparse neighbour graph refuses a configured threshold (CEL and the models say the same).
SPARSE_THRESHOLD_MESSAGE = (
    "aggregation.threshold does not combine with aggregation.neighbours.graph sparse: the sparse graph's "
    "threshold is computed per neighbourhood from its bound; remove aggregation.threshold, or choose "
    "neighbours.graph complete"
)
SPARSE_MODE_MESSAGE = (
    "aggregation.neighbours.graph sparse needs aggregation.mode masked (it is the masking's key-agreement graph); "
    "remove aggregation.neighbours, or choose aggregation.mode masked"
)

#: Why a statistics-only job (``rounds: 0``) needs federated statistics (CEL and the models say the same).
STATISTICS_ONLY_PHASE_MESSAGE = (
    "spec.rounds 0 makes a statistics-only job, which runs the statistics phase and trains no round, but "
    "spec.data.preprocessing asks for no federated statistics: set spec.data.preprocessing with scaling "
    "standardize or minmax, categorical columns or impute; or set spec.rounds to 1 or more to train"
)
#: The training-only fields a statistics-only job refuses, each with what it would act on.
STATISTICS_ONLY_REFUSED: tuple[tuple[str, str], ...] = (
    ("rollback", "it rolls training back to an earlier round"),
    ("personalization", "it keeps trained layers in each silo"),
    ("compression", "it compresses model updates"),
)
STATISTICS_ONLY_PRIVACY_MESSAGE = (
    "spec.privacy is differential privacy for training, and a statistics-only job (spec.rounds 0) trains no "
    "round; remove spec.privacy (or set its mode none) and set spec.data.preprocessing.epsilon for private "
    "statistics, or set spec.rounds to 1 or more"
)


def statistics_only_refusal(field: str, why: str) -> str:
    """Why a statistics-only job refuses the training-only ``spec.<field>`` (CEL and the models say the same)."""
    return (
        f"spec.{field} does not apply to a statistics-only job (spec.rounds 0): {why}, and the job trains no "
        f"round; remove spec.{field}, or set spec.rounds to 1 or more"
    )


class NeighboursSpec(_Model):
    """The masking graph: every pair of silos (complete), or a sparse graph of logarithmic degree (SecAgg+)."""

    graph: NeighbourGraphKind = Field(
        default=NeighbourGraphKind.COMPLETE,
        strict=False,
        description=(
            "complete: every pair of silos agrees a mask and holds the other's shares (Bonawitz et al. 2017). "
            "sparse: each round draws from a public seed a Harary graph whose degree and per-neighbourhood "
            "threshold are the smallest that keep the guarantee for colludingFraction and dropoutFraction "
            "with failure probability 2^-40 (Bell et al. 2020); a job too small for any sparse degree keeps "
            "the complete graph. docs/trust.md states what each choice guarantees."
        ),
    )
    colluding_fraction: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="Sparse graph: the largest fraction of silos assumed to collude with the hub.",
    )
    dropout_fraction: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="Sparse graph: the largest fraction of silos assumed to drop out of a round.",
    )
    hub: HubModel = Field(
        default=HubModel.CURIOUS,
        strict=False,
        description=(
            "Sparse graph: curious, the hub follows the protocol; semiMalicious, the hub may also lie about "
            "who dropped out, which needs a larger threshold."
        ),
    )


class AggregationSpec(_Model):
    """Secure aggregation settings."""

    mode: AggregationMode = Field(
        default=AggregationMode.MASKED,
        strict=False,
        description=(
            "masked: pairwise-masked secure aggregation (Bonawitz et al. 2017); the hub only "
            "sees the sum. homomorphic: multiparty CKKS; each silo holds a share of the round's "
            "key, the hub adds ciphertexts and fuses the silos' decryption shares into the sum "
            "(docs/homomorphic.md); fedadam is refused. plain: updates are summed in the clear "
            "(testing only)."
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
    neighbours: NeighboursSpec | None = Field(
        default=None,
        description="Masked mode: which silos mask with each other. Defaults to the complete graph.",
    )


#: Bit widths the quantizer takes, and the widest word of the masked sum (its masks are 32-bit words).
COMPRESSION_MIN_BITS = 2
COMPRESSION_MAX_BITS = 24
MASKED_SUM_BITS = 32
Bits = Annotated[int, Field(ge=COMPRESSION_MIN_BITS, le=COMPRESSION_MAX_BITS)]


def masked_sum_fits(bits: int, silos: int) -> bool:
    """Whether ``silos`` sums of ``bits``-bit levels fit the masked words: ``bits + ceil(log2 silos) <= 32``."""
    return bits + (silos - 1).bit_length() <= MASKED_SUM_BITS


class AdaptiveCompressionSpec(_Model):
    """Let the hub choose each round's quantization level from what the silos' links carry."""

    bytes_budget: int | None = Field(
        default=None,
        ge=1024,
        le=2**40,
        description="Most bytes one silo may send up per round; the hub picks the finest level that fits.",
    )
    target_round_seconds: float | None = Field(
        default=None,
        gt=0.0,
        le=86400.0,
        description=(
            "Upload time per round to aim at: the hub measures each silo's upload throughput and picks the "
            "finest level the slowest silo sends within it (one level for all silos)."
        ),
    )
    levels: list[Bits] = Field(
        default_factory=lambda: [16, 8, 4],
        min_length=1,
        max_length=8,
        description="Bit widths to choose from, finest first (strictly decreasing).",
    )

    @model_validator(mode="after")
    def _target(self) -> Self:
        if self.bytes_budget is None and self.target_round_seconds is None:
            raise ValueError("set bytesBudget or targetRoundSeconds (or both): what the level adapts to")
        if any(a <= b for a, b in zip(self.levels, self.levels[1:], strict=False)):
            raise ValueError("levels must be strictly decreasing, finest first")
        return self


class CompressionSpec(_Model):
    """Fewer bytes up per round: quantization, shared-subset or top-k sparsification, error feedback.

    Compression runs on the silo after clipping and noise, so a DP job's privacy charge is
    unchanged (docs/compression.md).
    """

    bits: Bits | None = Field(
        default=None,
        description=(
            "Stochastic (unbiased) rounding of every sent value to this many bits, 16, 8 or 4 (2 to 24). Masked "
            "mode sums the levels in a modulus of bits + ceil(log2 silos) bits, packed on the wire."
        ),
    )
    value_range: float | None = Field(
        default=None,
        gt=0.0,
        le=1e6,
        description=(
            "Values are clipped to [-valueRange, valueRange] before rounding (error feedback keeps what is cut). "
            "Default: aggregation.clipRange."
        ),
    )
    error_feedback: bool = Field(
        default=True,
        description="Keep what compression dropped on the silo and add it to the next update (never sent).",
    )
    error_feedback_fraction: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description=(
            "The share of the kept residual added to the next update; the rest is dropped (partial error "
            "feedback). 1 keeps all of it. Top-k wants less (0.7): each round's local training already "
            "re-learns much of what the global model did not receive, so a whole residual counts it twice."
        ),
    )
    top_k: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="Plain mode only: each silo sends only this fraction of its coordinates, the largest.",
    )
    subset: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description=(
            "Every silo of a round sends the same fraction of coordinates, drawn from a seed the round publishes "
            "and rotating so every coordinate is visited; works under masking."
        ),
    )
    adaptive: AdaptiveCompressionSpec | None = Field(
        default=None, description="Choose the level per round from a bytes budget or a target upload time."
    )

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if self.top_k is not None and self.subset is not None:
            raise ValueError("set at most one of topK or subset")
        if self.adaptive is not None and self.bits is not None:
            raise ValueError("set bits or adaptive, not both: adaptive chooses the bits from adaptive.levels")
        if self.bits is None and self.top_k is None and self.subset is None and self.adaptive is None:
            raise ValueError("set bits, topK, subset or adaptive: this compression block compresses nothing")
        if not self.error_feedback and self.error_feedback_fraction != 1.0:
            raise ValueError("errorFeedbackFraction needs errorFeedback: true (there is no residual to share)")
        return self


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
    max_anomaly_score: float | None = Field(
        default=None,
        gt=0.0,
        le=1000.0,
        description=(
            "Deny the updates of a silo whose anomaly score (how far its past updates sat from the other silos', "
            "in robust standard deviations; docs/robustness.md) is above this, e.g. 5 (update_anomalous). "
            "Unset: scores are reported, not judged."
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


class RateLimitSpec(_Model):
    """How hard one silo may call the aggregator; beyond it the call gets RESOURCE_EXHAUSTED and never reaches a round.

    Limits are per silo, counted after its certificate is verified, so no partner can spend
    another's budget. The defaults leave an honest sidecar (about ten calls a round, a few at
    once) far below every limit.
    """

    calls_per_second: float = Field(
        default=200.0,
        gt=0.0,
        le=10000.0,
        description="Calls per second one silo may make on average (a token bucket refilled at this rate).",
    )
    burst: int = Field(
        default=400, ge=1, le=100000, description="Calls one silo may make at once above the average rate."
    )
    concurrent_calls: int = Field(
        default=4,
        ge=1,
        le=64,
        description=(
            "Calls one silo may have in flight at once (a round-wait holds one for up to 30 seconds); the "
            "aggregator sizes its worker pool from it, so one silo cannot hold every worker."
        ),
    )
    concurrent_uploads: int = Field(
        default=2,
        ge=1,
        le=64,
        description=(
            "Update uploads one silo may have in flight at once; at most concurrentCalls. The second of two is "
            "refused as upload_busy by the admission steps, a third never reaches them."
        ),
    )
    audit_window_seconds: int = Field(
        default=60,
        ge=1,
        le=3600,
        description=(
            "The audit log records a silo's rate limiting once per window (with the count of calls refused "
            "since its last record), so a flood cannot flood the audit log."
        ),
    )
    stream_window_kib: int = Field(
        default=4096,
        ge=0,
        le=16384,
        alias="streamWindowKiB",
        description=(
            "The HTTP/2 receive window of each call's stream at the aggregator, in KiB: about what an upload "
            "moves per round trip (at least its 1 MiB chunk), and what an upload that did not reserve its "
            "slot may buffer in the hub while it waits (sidecars reserve first, so theirs buffer nothing). "
            "At 100 ms round trip one upload moved about 9 MiB/s with 64, 33 with 4096 and 56 with gRPC's "
            "own sizing (docs/big-models.md). Lower it to bound what a silo that streams without reserving "
            "can park in the hub; 0: gRPC sizes it (BDP probing, at least 4 MiB per stream)."
        ),
    )

    @model_validator(mode="after")
    def _uploads_are_calls(self) -> Self:
        if self.concurrent_uploads > self.concurrent_calls:
            raise ValueError(
                f"rateLimits.concurrentUploads ({self.concurrent_uploads}) is above rateLimits.concurrentCalls "
                f"({self.concurrent_calls}); an upload is a call: lower concurrentUploads or raise concurrentCalls"
            )
        return self


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
    rounds: int = Field(
        default=10,
        ge=0,
        le=100000,
        description=(
            "Number of federated rounds. 0 makes a statistics-only job: the statistics phase of "
            "data.preprocessing runs (it must ask for federated statistics), its release is published in "
            "status.statistics, and the job succeeds without training a round (docs/statistics.md). A job "
            "cannot change between 0 and a number of rounds once it exists."
        ),
    )
    round_timeout_seconds: int = Field(
        default=300,
        ge=5,
        le=86400,
        description="A round waiting longer than this closes with the silos that answered.",
    )
    join_timeout_seconds: int | None = Field(
        default=None,
        ge=10,
        le=7 * 86400,
        description=(
            "How long the aggregator waits for silos to join before round 1; with fewer than minSilos "
            "by then the job fails. Unset: the larger of 120 s and roundTimeoutSeconds. Partners' pods "
            "start when their own operators build them and pull their images, minutes after the hub's."
        ),
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed for data, init and sampling.")
    purpose: Purpose | None = Field(
        default=None,
        description="What the job is for, e.g. sepsis-research; a silo whose consent lists purposes joins only those.",
    )
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
    personalization: PersonalizationSpec | None = Field(
        default=None,
        description="Private layers (FedPer heads, FedBN normalization) and local fine-tuning. Default: none.",
    )
    compression: CompressionSpec | None = Field(
        default=None, description="Compression of updates on the silo's uplink. Default: none."
    )
    resources: PodResources = Field(
        default_factory=PodResources,
        description="CPU and memory of the pods the operator creates for this job.",
    )
    rate_limits: RateLimitSpec = Field(
        default_factory=RateLimitSpec,
        description="Per-silo limits on calls to the aggregator, read when the aggregator starts.",
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
        # Before the rollback's own checks: a rollback in a job that trains nothing is refused for that.
        self._check_statistics_only()
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
        if self.aggregation.mode is AggregationMode.HOMOMORPHIC:
            if len(self.silos) < MASKED_MIN_SILOS:
                raise ValueError(HOMOMORPHIC_MIN_SILOS_MESSAGE)
            if self.strategy.name is StrategyName.FEDADAM:
                raise ValueError(HOMOMORPHIC_FEDADAM_MESSAGE)
        strategy = self.strategy
        if strategy.name is StrategyName.SIGN_VOTE and self.aggregation.mode is AggregationMode.HOMOMORPHIC:
            raise ValueError(SIGN_VOTE_HOMOMORPHIC_MESSAGE)
        if strategy.name.needs_cleartext and self.aggregation.mode is not AggregationMode.PLAIN:
            raise ValueError(
                f"strategy.name {strategy.name.value} needs each silo's update in the clear, which masked "  # noqa: S608 - not SQL
                "aggregation hides from the hub; set aggregation.mode plain, or choose fedavg, fedprox, fedadam or sign_vote"
            )
        if strategy.sign_step_size is not None and strategy.name is not StrategyName.SIGN_VOTE:
            raise ValueError(SIGN_STEP_SIZE_MESSAGE)
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
        self._check_personalization()
        self._check_compression()
        threshold = self.aggregation.threshold
        if threshold is not None and threshold > len(self.silos):
            raise ValueError(f"aggregation.threshold ({threshold}) is above the number of silos ({len(self.silos)})")
        neighbours = self.aggregation.neighbours
        if neighbours is not None and neighbours.graph is NeighbourGraphKind.SPARSE:
            if threshold is not None:
                raise ValueError(SPARSE_THRESHOLD_MESSAGE)
            if self.aggregation.mode is not AggregationMode.MASKED:
                raise ValueError(SPARSE_MODE_MESSAGE)
        return self

    def _check_statistics_only(self) -> None:
        """A statistics-only job runs a statistics phase and carries no setting that acts on training."""
        if not self.statistics_only:
            return
        preprocessing = self.data.preprocessing
        if preprocessing is None or not preprocessing.federated:
            raise ValueError(STATISTICS_ONLY_PHASE_MESSAGE)
        for field, why in STATISTICS_ONLY_REFUSED:
            if getattr(self, field) is not None:
                raise ValueError(statistics_only_refusal(field, why))
        if self.privacy.mode is not PrivacyMode.NONE:
            raise ValueError(STATISTICS_ONLY_PRIVACY_MESSAGE)

    @property
    def statistics_only(self) -> bool:
        """Whether the job is its statistics phase alone (``rounds: 0``): released, then finished, no round trained.

        The one rule every process reads: the aggregator ends the job when the phase is released, and
        each silo's sidecar ends with it instead of joining training.
        """
        return self.rounds == 0

    def _check_personalization(self) -> None:
        """Batch normalization and FedBN need a model that has them and training that allows them."""
        if self.model.normalization is Normalization.BATCH and self.privacy.mode is PrivacyMode.RECORD:
            raise ValueError(
                "model.normalization batch does not combine with privacy.mode record (batch statistics mix "
                "records, which per-record clipping cannot bound); use normalization layer"
            )
        personal = self.personalization
        if (
            personal is not None
            and personal.private_normalization
            and self.model.builtin is not None
            and self.model.normalization is Normalization.NONE
        ):
            raise ValueError(
                "personalization.privateNormalization needs normalization layers; set model.normalization "
                "batch or layer"
            )

    def _check_compression(self) -> None:
        """Compression that the aggregation mode can carry: shared words under masking, none under CKKS."""
        compression = self.compression
        if compression is not None and self.aggregation.mode is AggregationMode.HOMOMORPHIC:
            raise ValueError(HOMOMORPHIC_COMPRESSION_MESSAGE)
        if compression is None or self.aggregation.mode is not AggregationMode.MASKED:
            return
        if self.strategy.name is StrategyName.SIGN_VOTE:
            raise ValueError(SIGN_VOTE_COMPRESSION_MESSAGE)
        if compression.top_k is not None:
            raise ValueError(
                "spec.compression.topK needs aggregation.mode plain: masks cancel only where every silo sends the "
                "same coordinates; use spec.compression.subset under masking"
            )
        if compression.bits is None and compression.adaptive is None:
            raise ValueError(
                "masked aggregation compresses by quantizing: set spec.compression.bits (16, 8 or 4) or "
                "spec.compression.adaptive"
            )
        widths = [compression.bits] if compression.bits is not None else []
        widths += compression.adaptive.levels if compression.adaptive is not None else []
        for bits in widths:
            if not masked_sum_fits(bits, len(self.silos)):
                raise ValueError(
                    f"spec.compression.bits {bits} with {len(self.silos)} silos needs sums wider than the "
                    f"{MASKED_SUM_BITS}-bit masked words; lower spec.compression.bits (or adaptive.levels) or "
                    "name fewer silos"
                )

    @property
    def masked_vote(self) -> bool:
        """Whether rounds send sign votes under masking: the hub unmasks their tally (``strategy sign_vote``, masked)."""
        return self.strategy.name is StrategyName.SIGN_VOTE and self.aggregation.mode is AggregationMode.MASKED

    @property
    def charges_silos(self) -> bool:
        """Whether the job charges the silos' privacy ledgers: DP training, DP statistics, or both.

        The one rule for where a silo's ledger is needed: ``fedsilo run`` gives each sidecar its
        ledger file and the silo operator mounts the silo's ledger volume exactly when it holds.
        """
        preprocessing = self.data.preprocessing
        return self.privacy.mode is not PrivacyMode.NONE or (preprocessing is not None and preprocessing.private)

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


#: A Kubernetes-style duration of hours, minutes and seconds, each part optional but in that
#: order, e.g. ``1h``, ``90m``, ``2h30m``, ``45s`` (a subset of Go's, which CEL's duration() reads).
_DURATION = re.compile(r"^([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?$")
_DURATION_UNITS = {"h": 3600, "m": 60, "s": 1}
#: Bounds of a silo's client-certificate lifetime. Seconds-long lifetimes exist for tests and
#: drills (renewal then runs every few seconds); in a cluster the kubelet takes up to about a
#: minute to refresh a mounted Secret, so production lifetimes should be minutes or more. A
#: year is the ceiling: the operator's silo CA outlives it, and a longer certificate is not short-lived.
MIN_CERTIFICATE_LIFETIME = "10s"
MAX_CERTIFICATE_LIFETIME = "8760h"


def parse_duration(text: str) -> dt.timedelta:
    """``1h30m`` as a timedelta; ValueError for anything but hours, minutes and seconds in that order."""
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"{text!r} is not a duration; write hours, minutes and seconds such as 1h, 90m or 2h30m")
    return dt.timedelta(seconds=sum(int(part[:-1]) * _DURATION_UNITS[part[-1]] for part in match.groups() if part))


#: The highest CA rotation counter; a platform team raising it by one per rotation never reaches it.
MAX_CA_ROTATION = 1_000_000


class SiloCertificateAuthority(_Model):
    """The silo's own CA that the operator keeps (with ``certificateLifetime``): when to rotate it."""

    rotation: int = Field(
        ge=0,
        le=MAX_CA_ROTATION,
        description=(
            "Raise it (by one) to rotate the silo's CA now, on a schedule or at once after a suspected "
            "compromise of its key. The operator then makes a new CA and drops the old CA's key, publishes both "
            "CAs to the hub (status.identity.caCertificate, which the hub re-reads without a restart), issues the "
            "next client certificate from the new CA at its renewal, and drops the old CA once the last "
            "certificate it issued has expired; no pod restarts and no round fails. "
            "status.certificateAuthority.rotation is the last rotation done; a rotation raised during another's "
            "overlap starts when that one ends. The operator also rotates the CA by itself when two thirds of its "
            "five-year life have passed."
        ),
    )


class SiloIdentity(_Model):
    """The silo's registered public identity, how long its mTLS client certificate lives, and its CA's rotation."""

    public_key: str | None = Field(
        default=None,
        pattern=_ED25519_KEY.pattern,
        description=(
            "The silo's Ed25519 public key, base64 (32 bytes). Updates signed by any other "
            "key are rejected. Written by 'fedsilo identity create'; the private half never "
            "leaves the silo. A new key takes effect at the next round boundary of every running "
            "job; updates signed with the old key are refused from then on (key_retired)."
        ),
    )
    certificate_lifetime: str | None = Field(
        default=None,
        min_length=2,
        max_length=21,
        pattern=_DURATION.pattern,
        description=(
            "How long each mTLS client certificate of the silo's sidecar is valid, as hours, minutes and "
            f"seconds (e.g. 1h, 90m, 2h30m; {MIN_CERTIFICATE_LIFETIME} to {MAX_CERTIFICATE_LIFETIME}). The "
            "operator keeps the silo's CA key in a Secret of the workload namespace and renews the certificate "
            "when two thirds of its life have passed, in the Secret the sidecar mounts, without restarting a "
            "pod; the hub refuses a certificate past its expiry. Unset: one certificate valid for 30 days, "
            "never renewed. Only for identities the operator creates (not with publicKey)."
        ),
    )

    certificate_authority: SiloCertificateAuthority | None = Field(
        default=None,
        description=(
            "The silo's CA, which the operator keeps for a silo with certificateLifetime: raise rotation to "
            "rotate it. Only with certificateLifetime."
        ),
    )

    @field_validator("certificate_lifetime")
    @classmethod
    def _lifetime_bounds(cls, value: str | None) -> str | None:
        if value is None:
            return value
        low, high = parse_duration(MIN_CERTIFICATE_LIFETIME), parse_duration(MAX_CERTIFICATE_LIFETIME)
        if not low <= parse_duration(value) <= high:
            raise ValueError(
                f"{value} is outside {MIN_CERTIFICATE_LIFETIME} to {MAX_CERTIFICATE_LIFETIME}; "
                "choose a lifetime in that range, e.g. 24h"
            )
        return value

    @model_validator(mode="after")
    def _renewable(self) -> Self:
        if self.certificate_lifetime is not None and self.public_key is not None:
            raise ValueError(
                "certificateLifetime is set with publicKey: a registered key means the partner holds the silo's "
                "CA, so the operator cannot renew its certificates; remove one of the two"
            )
        if self.certificate_authority is not None and self.certificate_lifetime is None:
            raise ValueError(
                "certificateAuthority is set without certificateLifetime: the operator keeps and rotates a CA only "
                "for a silo whose certificates it renews; set certificateLifetime, or remove certificateAuthority"
            )
        return self

    @property
    def ca_rotation(self) -> int:
        """The CA rotation the spec asks for (0 when it names none)."""
        return 0 if self.certificate_authority is None else self.certificate_authority.rotation

    @property
    def lifetime(self) -> dt.timedelta | None:
        """The client-certificate lifetime, or None for the unrenewed 30-day default."""
        return None if self.certificate_lifetime is None else parse_duration(self.certificate_lifetime)


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


#: Characters a suspension reason may hold: printable text on one line (it goes into audit
#: records, Events and log lines verbatim). Written for RE2 and Python alike.
_ONE_LINE = re.compile(r"^[^\x00-\x1f\x7f]+$")
MAX_SUSPENSION_REASON = 256


class SiloSuspension(_Model):
    """Why a silo is suspended. Present: the silo's updates are denied from the next round on; removed: readmitted."""

    reason: str = Field(
        min_length=1,
        max_length=MAX_SUSPENSION_REASON,
        pattern=_ONE_LINE.pattern,
        description=(
            "Why the silo is suspended, for the people reading the audit log and Events, e.g. "
            "'update norms drifted; under review (ticket 4411)'. One line of text, not blank."
        ),
    )

    @model_validator(mode="after")
    def _not_blank(self) -> Self:
        # Control characters are refused by the pattern, so a blank reason is spaces only.
        if not self.reason.strip(" "):
            raise ValueError("suspended.reason is blank; say why the silo is suspended")
        return self


#: What a job is for, as the job states it and silos consent to it, e.g. ``sepsis-research``.
Purpose = DnsLabel
#: A job name pattern a silo consents to: a DNS-1123 label in which ``*`` stands for any characters.
JobNamePattern = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9*]([-a-z0-9*]*[a-z0-9*])?$")]


class SiloConsent(_Model):
    """What the silo lets its data be used for: a job outside it is refused by the hub and by the silo's own operator."""

    data_classes: list[Annotated[DataClass, Field(strict=False)]] = Field(
        min_length=1, max_length=3, description="The data classes (a job's policy.dataClass) the silo joins jobs of."
    )
    purposes: list[Purpose] = Field(
        min_length=1, max_length=64, description="The purposes (a job's spec.purpose) the silo joins jobs for."
    )
    job_names: list[JobNamePattern] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        max_length=64,
        description="Names of the jobs the silo joins; '*' matches any characters, e.g. sepsis-*. Default: any.",
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
    suspended: SiloSuspension | None = Field(
        default=None,
        description=(
            "Set to suspend the silo: from the next round boundary of every job it takes part in, the "
            "policy denies its updates (reason silo_suspended, with this reason in the audit log and an "
            "Event on the Silo). Running rounds are not interrupted. Remove the field to readmit the silo "
            "from the next round on."
        ),
    )
    consent: SiloConsent | None = Field(
        default=None,
        description=(
            "What the silo consents to. Unset: consent is not managed and any job may name the silo; set: a job "
            "naming it must match every list, or the hub refuses it and the silo's operator starts no pod for it."
        ),
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
