"""fedsilo: cross-silo federated learning with signed, policy-gated, securely aggregated updates.

The package holds every process fedsilo runs (operator, aggregator, sidecar, trainer)
and the ``fedsilo`` command line. Subpackages are one concern each; see docs/architecture.md.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
