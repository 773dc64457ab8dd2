"""Both policy engines over the same bundle, and a valid update to vary one field at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fedsilo.policy import (
    EmbeddedRegoEngine,
    JobFacts,
    LedgerFacts,
    OpaServerEngine,
    PolicyEngine,
    SiloFacts,
    UpdateFacts,
    UpdatePolicyInput,
)
from fedsilo_testing import OpaServer

VALID = UpdatePolicyInput(
    job=JobFacts(
        name="j",
        round=3,
        norm_cap=5.0,
        max_epsilon=8.0,
        aggregation="masked",
        data_class="sensitive",
        min_samples=10,
        delta=1e-5,
        silos=("a", "b", "c"),
    ),
    silo=SiloFacts(name="a", enrolled=True, max_epsilon=6.0),
    update=UpdateFacts(
        signature_valid=True,
        round=3,
        nonce="n1",
        l2_norm=3.0,
        num_samples=100,
        epsilon_round=0.2,
        payload_digest="sha256:" + "0" * 64,
    ),
    ledger=LedgerFacts(
        nonce_seen=False, seen_nonces=2, epsilon_spent=1.0, epsilon_if_accepted=1.2, epsilon_lifetime_if_accepted=2.0
    ),
)


def varied(base: UpdatePolicyInput = VALID, **changes: dict[str, Any]) -> UpdatePolicyInput:
    """``base`` with fields of its sections replaced, e.g. ``varied(update={"round": 2})``."""
    sections = {name: getattr(base, name).model_copy(update=fields) for name, fields in changes.items()}
    return base.model_copy(update=sections)


@pytest.fixture(scope="session")
def embedded() -> EmbeddedRegoEngine:
    return EmbeddedRegoEngine()


@pytest.fixture(scope="session")
def server_engine(opa_server: OpaServer) -> Iterator[OpaServerEngine]:
    with OpaServerEngine(opa_server.url) as engine:
        yield engine


@pytest.fixture(params=["embedded", "opa-server"])
def engine(request: pytest.FixtureRequest) -> PolicyEngine:
    """Each test that takes ``engine`` runs once in process and once against the real OPA server."""
    return request.getfixturevalue("embedded" if request.param == "embedded" else "server_engine")
