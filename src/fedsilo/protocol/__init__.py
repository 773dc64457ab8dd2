"""The wire: the gRPC protocol, tensor encoding, and the one converter to domain objects."""

from ._tensors import FloatVector as FloatVector
from ._tensors import TensorLayout as TensorLayout
from ._tensors import TensorSpec as TensorSpec
from ._tensors import Weights as Weights

__all__ = ["FloatVector", "TensorLayout", "TensorSpec", "Weights"]
