"""Both policy engines over the same bundle, and a valid update input to vary."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fedsilo.policy import EmbeddedRegoEngine, OpaServerEngine, PolicyEngine
from tests.conftest import OpaServer

VALID: dict[str, Any] = {
    "schema_version": "fedsilo.update/v1",
    "job": {
        "name": "j", "round": 3, "norm_cap": 5.0, "max_epsilon": 8.0, "aggregation": "masked",
        "data_class": "sensitive", "min_samples": 10, "delta": 1e-5, "silos": ["a", "b", "c"],
    },
    "silo": {"name": "a", "enrolled": True, "max_epsilon": 6.0},
    "update": {
        "signature_valid": True, "round": 3, "nonce": "n1", "l2_norm": 3.0, "num_samples": 100,
        "epsilon_round": 0.2, "payload_digest": "sha256:00", "transport_problem": None,
    },
    "ledger": {
        "nonce_seen": False, "seen_nonces": 2, "epsilon_spent": 1.0, "epsilon_if_accepted": 1.2,
        "epsilon_lifetime_if_accepted": 2.0,
    },
}


def valid_input() -> dict[str, Any]:
    return copy.deepcopy(VALID)


@pytest.fixture(scope="session")
def embedded() -> EmbeddedRegoEngine:
    return EmbeddedRegoEngine()


@pytest.fixture(scope="session")
def server_engine(opa_server: OpaServer) -> OpaServerEngine:
    return OpaServerEngine(opa_server.url)


@pytest.fixture(params=["embedded", "opa-server"])
def engine(request: pytest.FixtureRequest) -> PolicyEngine:
    return request.getfixturevalue("embedded" if request.param == "embedded" else "server_engine")
