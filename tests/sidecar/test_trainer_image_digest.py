"""The trainer image's digest, where the silo knows it, travels signed in every update's metadata:
the operator passes it to the sidecar when the trainer image is pinned by digest, the Sign step
puts it under the signature, and the hub's strict reader takes it or refuses a malformed one."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from fedsilo.api import load_manifest
from fedsilo.identity import SigningKey
from fedsilo.launch import SidecarArgs
from fedsilo.operator import OperatorConfig
from fedsilo.operator._silo_objects import silo_pods
from fedsilo.protocol import MessageError, UpdateMetadata
from fedsilo.sidecar._pipeline import run_steps
from fedsilo.sidecar._sending import Sign
from fedsilo.sidecar._update import Clip, check_weights, plain_encode
from fedsilo_testing.sidecar_updates import Wire

from ..operator.test_children_are_built_by_pure_functions import ROOT, by_kind, keyed, silo_inputs
from .test_update_steps import _update

DIGEST = "sha256:" + "ab" * 32


def _signed(digest: str | None) -> dict[str, object]:
    key, wire = SigningKey.generate(), Wire()
    local = {"w": np.full((2, 3), 0.5, np.float32), "b": np.zeros(3, np.float32)}
    steps = [check_weights, Clip(norm_cap=1.0, clip_range=4.0), plain_encode, Sign("job", "a", key, digest), wire]
    assert run_steps(steps, _update(local)).accepted
    (sent,) = wire.sent
    key.public_key.verify(sent.signature, sent.signed_metadata)
    return dict(json.loads(sent.signed_metadata))


def test_the_digest_is_signed_when_known_and_null_otherwise() -> None:
    claims = _signed(DIGEST)
    assert claims["trainer_image_digest"] == DIGEST
    assert UpdateMetadata.parse(json.dumps(claims).encode()).trainer_image_digest == DIGEST
    assert _signed(None)["trainer_image_digest"] is None


def test_the_hub_refuses_a_malformed_digest_naming_the_field() -> None:
    claims = _signed(DIGEST)
    claims["trainer_image_digest"] = "latest"
    with pytest.raises(MessageError, match="trainer_image_digest"):
        UpdateMetadata.parse(json.dumps(claims).encode())


def test_a_sidecar_argument_round_trips() -> None:
    args = SidecarArgs.parse(
        ["sidecar", "--job-config", "j.yaml", "--silo", "a", "--aggregator", "h:1", "--identity-dir", "i",
         "--trainer-listen", "unix:/t", "--trainer-image-digest", DIGEST]
    )  # fmt: skip
    assert args.trainer_image_digest == DIGEST and "--trainer-image-digest" in args.argv()


@pytest.mark.parametrize(
    ("image", "expected"),
    [(f"ghcr.io/fedsilo/trainer@{DIGEST}", DIGEST), ("ghcr.io/fedsilo/trainer:0.1.0", None)],
)
def test_the_operator_passes_the_digest_of_a_pinned_trainer_image(image: str, expected: str | None) -> None:
    config = replace(OperatorConfig(), trainer_image=image)
    manifest = load_manifest(ROOT / "examples" / "quickstart.yaml")
    inputs = silo_inputs((manifest.job, [keyed(silo) for silo in manifest.silos]))
    pods = by_kind(silo_pods(inputs, "10.0.0.7", config))
    (sidecar,) = pods[("Pod", "quickstart-hospital-a-sidecar")]["spec"]["containers"]
    args = sidecar["args"]
    if expected is None:
        assert "--trainer-image-digest" not in args
    else:
        assert args[args.index("--trainer-image-digest") + 1] == expected
