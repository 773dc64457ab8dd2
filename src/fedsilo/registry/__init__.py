"""Model registry: each round's global model as safetensors plus a lineage record and the hub's seal."""

from ._local import Lineage as Lineage
from ._local import LocalRegistry as LocalRegistry
from ._local import ModelRef as ModelRef
from ._local import ModelRegistry as ModelRegistry
from ._local import ModelSeal as ModelSeal
from ._local import ModelVerificationError as ModelVerificationError
from ._local import RegistryError as RegistryError
from ._local import lineage_digest as lineage_digest
from ._local import preprocessing_path as preprocessing_path
from ._local import verify_model as verify_model

__all__ = [
    "Lineage",
    "LocalRegistry",
    "ModelRef",
    "ModelRegistry",
    "ModelSeal",
    "ModelVerificationError",
    "RegistryError",
    "lineage_digest",
    "preprocessing_path",
    "verify_model",
]
