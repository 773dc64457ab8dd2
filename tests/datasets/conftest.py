"""Job specs for the learning tests: a valid FederatedJobSpec from just the fields a test cares about."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from fedsilo.api import FederatedJobSpec


def job_spec(silos: int = 3, **fields: Any) -> FederatedJobSpec:
    """A job over ``silos`` silos with an mlp and digits unless ``fields`` say otherwise.

    Aggregation is plain: data loading does not depend on it, and a one-silo job may not mask.
    """
    document: dict[str, Any] = {
        "silos": [f"silo-{i}" for i in range(silos)],
        "minSilos": 1,
        "aggregation": {"mode": "plain"},
        "model": {"builtin": "mlp"},
        "data": {"source": "digits"},
    }
    document.update(fields)
    return FederatedJobSpec.model_validate(document)


def rows(x: npt.NDArray[np.float32]) -> list[bytes]:
    """Records as sorted byte strings: equal lists mean the same multiset of records."""
    return sorted(r.tobytes() for r in x.reshape(len(x), -1))
