"""Model registry: each round's global model as safetensors plus a lineage record."""

from ._local import Lineage as Lineage
from ._local import LocalRegistry as LocalRegistry
from ._local import ModelRef as ModelRef
from ._local import ModelRegistry as ModelRegistry
from ._local import RegistryError as RegistryError

__all__ = ["Lineage", "LocalRegistry", "ModelRef", "ModelRegistry", "RegistryError"]
