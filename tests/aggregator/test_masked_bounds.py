"""A silo that skips its sidecar's encoding cannot move a masked round's model beyond the signed bounds.

The hub never sees one masked update, only the sum; what it can check is that the sum is
one the counted silos' signed claims allow (``fedsilo.aggregator._bounds``). These tests
play four silos with raw clients over mTLS that run the real secure-aggregation client,
and one of them tampers with its masked vector after masking, as a partner running a
modified sidecar would: the round is void, the model stays, and the report says why.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from fedsilo.aggregator._aggregation import FloatSum
from fedsilo.aggregator._bounds import SignedContribution, sum_problem
from fedsilo.identity import sha256_digest
from fedsilo.protocol import (
    PolicyVerdict,
    pb,
    plan_from_proto,
    round_ref,
    secagg_envelope,
    update_stream,
    verdict_from_proto,
)
from fedsilo.registry import LocalRegistry
from fedsilo.secagg import SecAggClient, SecAggConfig

from .conftest import LENGTH, WEIGHTS, Hub, Silo, running_hub

SILOS = ["a", "b", "c", "d"]
RECORDS = 100
Tamper = Callable[[npt.NDArray[np.uint32]], None]


def _contributions(*pairs: tuple[float, float]) -> dict[str, SignedContribution]:
    return {str(i): SignedContribution(weight=w, l2_norm=n) for i, (w, n) in enumerate(pairs)}


def test_a_sum_within_the_signed_norms_and_weights_passes() -> None:
    signed = _contributions((100, 1.0), (50, 2.0))
    aligned = np.full(4, (100 * 1.0 + 50 * 2.0) / 2.0)  # norm exactly the bound: both updates point the same way
    assert sum_problem(FloatSum(aligned, 150), signed, check_norm=True, coordinate_error=0.0) is None


def test_a_sum_longer_than_the_signed_norms_allow_is_named() -> None:
    signed = _contributions((100, 1.0), (50, 2.0))
    problem = sum_problem(FloatSum(np.full(4, 101.0), 150), signed, check_norm=True, coordinate_error=0.0)
    assert problem is not None and "L2 norm is 202" in problem
    # Silo-level DP adds noise after the norm was measured: only the weight is checked.
    assert sum_problem(FloatSum(np.full(4, 101.0), 150), signed, check_norm=False, coordinate_error=0.0) is None


def test_a_weight_word_that_is_not_the_signed_records_is_named() -> None:
    problem = sum_problem(
        FloatSum(np.zeros(4), 0), _contributions((100, 1.0), (50, 2.0)), check_norm=True, coordinate_error=0.0
    )
    assert problem == "the sum's weight word is 0, the counted silos signed 150 in all"


def test_rounding_of_each_coordinate_is_allowed_for() -> None:
    signed = _contributions((1, 1.0))
    over = np.full(100, 0.1 + 0.001)  # norm 1.01: one percent over the claim
    assert sum_problem(FloatSum(over, 1), signed, check_norm=True, coordinate_error=0.0) is not None
    assert sum_problem(FloatSum(over, 1), signed, check_norm=True, coordinate_error=0.001) is None


def _play(hub: Hub, silo: Silo, values: npt.NDArray[np.float32], tamper: Tamper | None, out: dict[str, object]) -> None:
    """One silo's whole masked round over gRPC: keys, the (maybe tampered) masked update, unmasking."""
    silo.join()
    plan = plan_from_proto(silo.stub.WaitRound(pb.WaitRoundRequest(job="admission", silo=silo.name, after_round=0)))
    ref = round_ref("admission", plan.round, silo.name)
    client = SecAggClient(
        SecAggConfig(
            job="admission",
            round=plan.round,
            silos=tuple(SILOS),
            threshold=plan.threshold,
            vector_length=plan.vector_length,
            fractional_bits=plan.fractional_bits,
            clip_range=1.0,
        ),
        silo.name,
        silo.key,
        {name: peer.key.public_key for name, peer in hub.silos.items()},
    )
    client.receive_adverts(silo.stub.AdvertiseKeys(secagg_envelope(ref, client.advertise())).body)
    client.receive_shares(silo.stub.ShareKeys(secagg_envelope(ref, client.share_keys())).body)
    masked = client.masked_input(values, RECORDS)
    if tamper is not None:
        tamper(masked)
    # The claims are the honest update's: the signature cannot tell what is inside the mask.
    metadata = silo.metadata(
        values,
        l2_norm=float(np.linalg.norm(values.astype(np.float64))),
        dtype="uint32",
        payload_digest=sha256_digest(masked.tobytes()),
        round=plan.round,
    )
    data = metadata.canonical_bytes()
    verdict: PolicyVerdict = verdict_from_proto(
        silo.stub.SubmitUpdate(update_stream(data, silo.key.sign(data), [(0, masked)], "uint32"))
    )
    out[silo.name] = verdict
    request = silo.stub.GetUnmaskRequest(ref)
    silo.stub.Unmask(secagg_envelope(ref, client.unmask(request.body)))


def _masked_round(tmp_path: Path, tamper: Tamper | None) -> Hub:
    aggregation = {"mode": "masked", "clipRange": 1.0}
    with running_hub(tmp_path, SILOS, minSilos=3, aggregation=aggregation) as hub:
        values = np.full(LENGTH - 1, 0.1, np.float32)
        verdicts: dict[str, object] = {}
        threads = [
            threading.Thread(target=_play, args=(hub, hub.silos[n], values, tamper if n == "d" else None, verdicts))
            for n in SILOS
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert all(isinstance(v, PolicyVerdict) and v.accepted for v in verdicts.values()), verdicts
        hub.first_summary(timeout=60)
        return hub


def _model_after_round_one(tmp_path: Path) -> dict[str, npt.NDArray[np.float32]]:
    registry = LocalRegistry(tmp_path / "registry")
    return dict(registry.load(registry.show("admission", 1)))


def test_an_honest_masked_round_counts(tmp_path: Path) -> None:
    hub = _masked_round(tmp_path, None)
    summary = hub.coordinator.summaries[0]
    assert summary.void is None


@pytest.mark.parametrize(
    ("label", "tamper", "problem"),
    [
        # The measurement: 2^28 added to one word moved that coordinate from 0.01 to 0.86.
        ("one huge word", lambda masked: masked.__setitem__(0, (int(masked[0]) + 2**28) % 2**32), "L2 norm"),
        # Cancelling the others' weights made the aggregate weight 0 and failed the job, every round.
        (
            "a cancelling weight",
            lambda masked: masked.__setitem__(-1, (int(masked[-1]) - 3 * RECORDS) % 2**32),
            "weight word",
        ),
    ],
)
def test_a_tampered_masked_vector_voids_the_round_and_the_model_stays(
    tmp_path: Path, label: str, tamper: Tamper, problem: str
) -> None:
    hub = _masked_round(tmp_path, tamper)
    summary = hub.coordinator.summaries[0]
    assert summary.void is not None and problem in summary.void, (label, summary.void)
    assert hub.outcome.get("error") is None
    stored = _model_after_round_one(tmp_path)
    for name, initial in WEIGHTS.items():
        np.testing.assert_array_equal(stored[name], initial)
