"""A silo's private parameters never leave it: the sidecar checks its trainer's declaration against the
job, and refuses an update whose trainer model or round model carries one, before anything is encoded,
signed or sent."""

from __future__ import annotations

import numpy as np
import pytest

from fedsilo.identity import SigningKey
from fedsilo.protocol import PolicyVerdict, RoundPlan, TensorLayout
from fedsilo.sidecar._pipeline import run_steps
from fedsilo.sidecar._private import KeepPrivate, private_names
from fedsilo.sidecar._sending import Sign
from fedsilo.sidecar._update import Clip, check_weights, plain_encode
from fedsilo_testing.sidecar_updates import Wire, outgoing_update

from ..datasets.conftest import job_spec

SHARED = {"body.weight": np.zeros((2, 3), np.float32), "body.bias": np.zeros(2, np.float32)}
HEAD = {"head.weight": np.ones((2, 2), np.float32)}
PRIVATE = frozenset(HEAD)


def _send(global_model: dict[str, np.ndarray], local: dict[str, np.ndarray]) -> tuple[PolicyVerdict, Wire]:
    plan = RoundPlan(round=1, vector_length=TensorLayout.of(global_model).size + 1)
    update = outgoing_update(plan, global_model, local)
    wire = Wire()
    steps = [
        KeepPrivate(PRIVATE),
        check_weights,
        Clip(5.0, 4.0),
        plain_encode,
        Sign("job", "a", SigningKey.generate()),
        wire,
    ]
    return run_steps(steps, update), wire


def test_an_update_of_shared_parameters_goes_out_sized_to_them_alone() -> None:
    verdict, wire = _send(SHARED, {k: v + 0.1 for k, v in SHARED.items()})
    assert verdict.accepted and len(wire.sent) == 1
    assert wire.sent[0].require_payload().dtype == "float32"
    assert wire.sent[0].layout.size == sum(v.size for v in SHARED.values())


def test_a_trainer_model_that_carries_a_private_parameter_is_withheld_unsent() -> None:
    verdict, wire = _send(SHARED, {**SHARED, **HEAD})
    assert not verdict.accepted and wire.sent == []
    assert verdict.reasons[0].startswith(
        "withheld by sidecar: private_parameter: the trainer's model carries 'head.weight'"
    )


def test_a_round_model_that_asks_for_a_private_parameter_is_withheld_unsent() -> None:
    # A hub whose global model holds the head would have the head's values encoded into the payload.
    verdict, wire = _send({**SHARED, **HEAD}, {**SHARED, **HEAD})
    assert not verdict.accepted and wire.sent == []
    assert "the round's model carries 'head.weight', which stays in this silo" in verdict.reasons[0]


def test_the_trainer_declaration_must_cover_what_the_job_marks() -> None:
    marked = job_spec(personalization={"privateParameters": ["head"]})
    assert private_names(marked, ["head.weight"]) == PRIVATE
    with pytest.raises(ValueError, match="declares none"):
        private_names(marked, [])
    with pytest.raises(ValueError, match="privateParameters names 'head', but the trainer keeps nothing under it"):
        private_names(marked, ["body.bias"])
    with pytest.raises(ValueError, match="the job has no personalization"):
        private_names(job_spec(), ["head.weight"])
    assert private_names(job_spec(), []) == frozenset()
