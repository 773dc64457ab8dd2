"""The embedded Rego engine and the real OPA server make identical decisions (differential test)."""

from __future__ import annotations

import random
from typing import Any

from fedsilo.policy import UPDATE_DECISION, EmbeddedRegoEngine, OpaServerEngine

from .conftest import valid_input

CHOICES: list[tuple[str, str, list[Any]]] = [
    ("job", "round", [1, 2, 4]),
    ("job", "norm_cap", [0.5, 1.0, 12.25]),
    ("job", "max_epsilon", [None, 1.0, 3.0]),
    ("job", "aggregation", ["plain", "homomorphic"]),
    ("job", "data_class", ["public", "internal"]),
    ("job", "min_samples", [1, 500]),
    ("silo", "name", ["b", "c", "mallory"]),
    ("silo", "enrolled", [False]),
    ("silo", "max_epsilon", [None, 2.0]),
    ("update", "signature_valid", [False]),
    ("update", "round", [1, 2, 4]),
    ("update", "l2_norm", [0.0, 4.99, 5.0, 5.000001, 7.25, 1e-9, 123.456789]),
    ("update", "num_samples", [1, 9, 10, 11, 1000]),
    ("update", "transport_problem", ["payload_invalid: short", "shape_mismatch: 3 values"]),
    ("ledger", "nonce_seen", [True]),
    ("ledger", "epsilon_if_accepted", [0.0, 7.999, 8.934, 9.5]),
    ("ledger", "epsilon_lifetime_if_accepted", [0.1, 5.99, 6.0, 6.0001, 8.933333]),
]


def _generated(rng: random.Random) -> dict[str, Any]:
    """The valid input with each field, independently and rarely, changed to an edge value."""
    document = valid_input()
    for section, field, values in CHOICES:
        if rng.random() < 0.1:
            document[section][field] = rng.choice(values)
    return document


def test_both_engines_decide_200_generated_inputs_identically(
    embedded: EmbeddedRegoEngine, server_engine: OpaServerEngine
) -> None:
    rng = random.Random(20261123)
    allowed = denied = 0
    for _ in range(200):
        document = _generated(rng)
        ours = embedded.decide(UPDATE_DECISION, document)
        theirs = server_engine.decide(UPDATE_DECISION, document)
        assert ours == theirs, document
        allowed += ours.accepted
        denied += not ours.accepted
    assert allowed > 5 and denied > 100
