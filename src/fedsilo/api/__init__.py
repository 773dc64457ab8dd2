"""The fedsilo API types: ``FederatedJob`` and ``Silo`` (group ``fedsilo.io``, ``v1alpha1``).

These models are the one schema source: the local run validates manifests with them and
the CRDs in ``crds/`` are generated from them. Everything above this layer receives
validated, typed objects and never re-checks raw YAML.
"""

from ._consent import ConsentRefusal as ConsentRefusal
from ._consent import MissingConsent as MissingConsent
from ._consent import consent_refusal as consent_refusal
from ._consent import consent_refusals as consent_refusals
from ._manifest import Manifest as Manifest
from ._manifest import ManifestError as ManifestError
from ._manifest import load_manifest as load_manifest
from ._manifest import parse_manifest as parse_manifest
from ._status import AdmissionRecord as AdmissionRecord
from ._status import AggregatorEndpoint as AggregatorEndpoint
from ._status import CompressionStatus as CompressionStatus
from ._status import Condition as Condition
from ._status import ConditionType as ConditionType
from ._status import Denial as Denial
from ._status import EvidenceHead as EvidenceHead
from ._status import FederatedJobStatus as FederatedJobStatus
from ._status import JobEvidence as JobEvidence
from ._status import JobOutcome as JobOutcome
from ._status import JobPhase as JobPhase
from ._status import JobResult as JobResult
from ._status import ModelQualityStatus as ModelQualityStatus
from ._status import ModelReference as ModelReference
from ._status import RoundReport as RoundReport
from ._status import SiloAuthorityStatus as SiloAuthorityStatus
from ._status import SiloCertificateStatus as SiloCertificateStatus
from ._status import SiloIdentityStatus as SiloIdentityStatus
from ._status import SiloJobStatus as SiloJobStatus
from ._status import SiloStatus as SiloStatus
from ._status import StatisticsStatus as StatisticsStatus
from ._status import StatusReporter as StatusReporter
from ._types import API_GROUP as API_GROUP
from ._types import API_VERSION as API_VERSION
from ._types import WORKLOAD_NAMESPACE_ANNOTATION as WORKLOAD_NAMESPACE_ANNOTATION
from ._types import AdaptiveCompressionSpec as AdaptiveCompressionSpec
from ._types import AggregationMode as AggregationMode
from ._types import AggregationSpec as AggregationSpec
from ._types import BuiltinModel as BuiltinModel
from ._types import CompressionSpec as CompressionSpec
from ._types import DataClass as DataClass
from ._types import DataSource as DataSource
from ._types import DataSpec as DataSpec
from ._types import FederatedJob as FederatedJob
from ._types import FederatedJobSpec as FederatedJobSpec
from ._types import FedsiloVersion as FedsiloVersion
from ._types import HubModel as HubModel
from ._types import Imputation as Imputation
from ._types import ModelSpec as ModelSpec
from ._types import NeighbourGraphKind as NeighbourGraphKind
from ._types import NeighboursSpec as NeighboursSpec
from ._types import Normalization as Normalization
from ._types import ObjectMeta as ObjectMeta
from ._types import PartitionScheme as PartitionScheme
from ._types import PartitionSpec as PartitionSpec
from ._types import PersonalizationSpec as PersonalizationSpec
from ._types import PolicySpec as PolicySpec
from ._types import PreprocessingSpec as PreprocessingSpec
from ._types import PrivacyMode as PrivacyMode
from ._types import PrivacySpec as PrivacySpec
from ._types import RateLimitSpec as RateLimitSpec
from ._types import RollbackSpec as RollbackSpec
from ._types import RoundNumber as RoundNumber
from ._types import Scaling as Scaling
from ._types import Silo as Silo
from ._types import SiloCertificateAuthority as SiloCertificateAuthority
from ._types import SiloConsent as SiloConsent
from ._types import SiloDataSpec as SiloDataSpec
from ._types import SiloIdentity as SiloIdentity
from ._types import SiloName as SiloName
from ._types import SiloSpec as SiloSpec
from ._types import SiloSuspension as SiloSuspension
from ._types import StrategyName as StrategyName
from ._types import StrategySpec as StrategySpec
from ._types import SyntheticSpec as SyntheticSpec
from ._types import TabularSpec as TabularSpec
from ._types import TrainingSpec as TrainingSpec
from ._types import parse_duration as parse_duration
from ._types import workload_namespace_problem as workload_namespace_problem

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "WORKLOAD_NAMESPACE_ANNOTATION",
    "AdaptiveCompressionSpec",
    "AdmissionRecord",
    "AggregationMode",
    "AggregationSpec",
    "AggregatorEndpoint",
    "BuiltinModel",
    "CompressionSpec",
    "CompressionStatus",
    "Condition",
    "ConditionType",
    "ConsentRefusal",
    "DataClass",
    "DataSource",
    "DataSpec",
    "Denial",
    "EvidenceHead",
    "FederatedJob",
    "FederatedJobSpec",
    "FederatedJobStatus",
    "FedsiloVersion",
    "HubModel",
    "Imputation",
    "JobEvidence",
    "JobOutcome",
    "JobPhase",
    "JobResult",
    "Manifest",
    "ManifestError",
    "MissingConsent",
    "ModelQualityStatus",
    "ModelReference",
    "ModelSpec",
    "NeighbourGraphKind",
    "NeighboursSpec",
    "Normalization",
    "ObjectMeta",
    "PartitionScheme",
    "PartitionSpec",
    "PersonalizationSpec",
    "PolicySpec",
    "PreprocessingSpec",
    "PrivacyMode",
    "PrivacySpec",
    "RateLimitSpec",
    "RollbackSpec",
    "RoundNumber",
    "RoundReport",
    "Scaling",
    "Silo",
    "SiloAuthorityStatus",
    "SiloCertificateAuthority",
    "SiloCertificateStatus",
    "SiloConsent",
    "SiloDataSpec",
    "SiloIdentity",
    "SiloIdentityStatus",
    "SiloJobStatus",
    "SiloName",
    "SiloSpec",
    "SiloStatus",
    "SiloSuspension",
    "StatisticsStatus",
    "StatusReporter",
    "StrategyName",
    "StrategySpec",
    "SyntheticSpec",
    "TabularSpec",
    "TrainingSpec",
    "consent_refusal",
    "consent_refusals",
    "load_manifest",
    "parse_duration",
    "parse_manifest",
    "workload_namespace_problem",
]
