"""The embedded Rego engine and the real OPA server make identical decisions (differential test).

Inputs are the valid update with fields changed independently: seeded random values, edge
values at every threshold, and malformed documents (missing fields, wrong types). Values
stay at least 1e-9 away from a threshold: rego-cpp parses and compares floats within about
one ulp of tolerance, so at a distance of one ulp the two engines may legitimately differ.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from fedsilo.policy import JOB_DECISION, UPDATE_DECISION, EmbeddedRegoEngine, OpaServerEngine

from .conftest import VALID

EDGES: dict[tuple[str, str], list[Any]] = {
    ("job", "round"): [0, 2, 3, 4, 10**6],
    ("job", "norm_cap"): [0.5, 3.0, 5.0, 12.25, 1e-9],
    ("job", "max_epsilon"): [None, 1.0, 1.2, 3.0],
    ("job", "aggregation"): ["masked", "plain", "homomorphic", "secret-sharing"],
    ("job", "data_class"): ["public", "internal", "sensitive", "secret"],
    ("job", "min_samples"): [None, 0, 1, 100, 101, 500],
    ("job", "silos"): [["a"], [], ["b", "c"]],
    ("silo", "name"): ["a", "b", "mallory", "ä-ü"],
    ("silo", "enrolled"): [False, True],
    ("silo", "max_epsilon"): [None, 1.2, 2.0, 0.5],
    ("update", "signature_valid"): [False, True],
    ("update", "round"): [2, 3, 4, -1],
    ("update", "l2_norm"): [0.0, 4.999999, 5.0, 5.000001, 7.25, 1e-9, 123.456789, -0.5, 1e300],
    ("update", "num_samples"): [-1, 0, 1, 9, 10, 11, 1000],
    ("update", "epsilon_round"): [None, 0.0, -1.0, 0.25],
    ("update", "transport_problem"): [
        None,
        "payload_invalid: short",
        "shape_mismatch: 3 values",
        'odd "quoted" \\ text',
    ],
    ("ledger", "nonce_seen"): [True, False],
    ("ledger", "epsilon_if_accepted"): [None, 0.0, 7.999, 8.0, 8.934, 9.5],
    ("ledger", "epsilon_lifetime_if_accepted"): [None, 0.1, 5.99, 6.0, 6.0001, 8.933333],
}
MALFORMED: list[tuple[str, str, Any]] = [
    ("update", "l2_norm", "3.0"),
    ("silo", "enrolled", "yes"),
    ("ledger", "nonce_seen", None),
    ("job", "norm_cap", None),
    ("update", "transport_problem", 42),
]


def _generated(rng: random.Random) -> dict[str, Any]:
    """The valid update with each field, independently, sometimes changed to an edge or random value."""
    document = VALID.to_document()
    for (section, field), values in EDGES.items():
        roll = rng.random()
        if roll < 0.08:
            document[section][field] = rng.choice(values)
        elif roll < 0.12 and isinstance(document[section][field], float):
            document[section][field] = round(rng.uniform(0, 12), rng.choice([1, 3, 9]))
    if rng.random() < 0.05:
        section, field, value = rng.choice(MALFORMED)
        document[section][field] = value
    if rng.random() < 0.03:
        section = rng.choice(["job", "silo", "update", "ledger"])
        del document[section][rng.choice(sorted(document[section]))]
    return document


def test_both_engines_decide_300_generated_updates_identically_one_by_one_and_in_bulk(
    embedded: EmbeddedRegoEngine, server_engine: OpaServerEngine
) -> None:
    rng = random.Random(20261123)
    documents = [_generated(rng) for _ in range(300)]
    outcomes: dict[bool, int] = {True: 0, False: 0}
    codes: set[str] = set()
    for document in documents:
        ours = embedded.decide(UPDATE_DECISION, document)
        theirs = server_engine.decide(UPDATE_DECISION, document)
        assert ours == theirs, document
        outcomes[ours.allow] += 1
        codes.update(ours.codes)
    # The server's bulk path (many documents per request) decides the same.
    assert server_engine.decide_many(UPDATE_DECISION, documents) == embedded.decide_many(UPDATE_DECISION, documents)
    # The generator must exercise both outcomes and nearly every rule, or the test proves little.
    assert outcomes[True] >= 20 and outcomes[False] >= 100, outcomes
    assert len(codes) >= 14, sorted(codes)


def test_both_engines_decide_generated_jobs_identically(
    embedded: EmbeddedRegoEngine, server_engine: OpaServerEngine
) -> None:
    rng = random.Random(7)
    base = {
        "schema_version": "fedsilo.job/v1",
        "job": {
            "name": "j",
            "namespace": None,
            "aggregation": "masked",
            "data_class": "sensitive",
            "silos": ["a", "b", "c"],
            "min_silos": 2,
            "norm_cap": 5.0,
            "min_samples": 10,
            "max_epsilon": 8.0,
            "privacy": {"mode": "silo", "target_epsilon": 6.0, "noise_multiplier": None, "delta": 1e-5},
        },
    }
    for _ in range(100):
        document = copy.deepcopy(base)
        job = document["job"]
        job["aggregation"] = rng.choice(["masked", "plain", "homomorphic"])
        job["data_class"] = rng.choice(["public", "internal", "sensitive"])
        job["silos"] = ["a", "b", "c", "d"][: rng.randint(1, 4)]
        job["max_epsilon"] = rng.choice([None, 1.5, 8.0, 10.0, 10.5, 50])
        job["privacy"]["mode"] = rng.choice(["none", "record", "silo"])
        job["privacy"]["target_epsilon"] = rng.choice([None, 0.5, 9.0, 12.0])
        ours = embedded.decide(JOB_DECISION, document)
        assert ours == server_engine.decide(JOB_DECISION, document), document
