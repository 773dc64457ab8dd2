"""The compress step sits after clipping and noise: a DP job's ledger is the same with and without
compression (post-processing), and error feedback keeps, on the silo, what compression dropped."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fedsilo.compression import ErrorFeedback, read_plain_payload
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.protocol import RoundCompression
from fedsilo.sidecar._compress import Compress
from fedsilo.sidecar._pipeline import Step, run_steps
from fedsilo.sidecar._update import Clip, check_weights, plain_encode
from fedsilo_testing.sidecar_updates import Wire, silo_dp_steps

from .test_update_steps import GLOBAL, LAYOUT, PLAN, _guard, _update

EIGHT_BITS = RoundCompression(bits=8, word_bits=8, value_range=1.0, weight_scale=1)
TOP_2 = RoundCompression(bits=0, word_bits=0, value_range=1.0, weight_scale=1, top_k=2)


def _dp_rounds(
    ledger: Path, compression: RoundCompression | None, fraction: float = 1.0, rounds: int = 3
) -> list[dict[str, object]]:
    wire = Wire()
    feedback = ErrorFeedback(fraction)
    compress = (
        [Compress(masked=False, error_feedback=True, rng=np.random.default_rng(0), feedback=feedback)]
        if compression
        else []
    )
    steps = silo_dp_steps(_guard(ledger), wire, *compress)
    local = {"w": np.full((2, 3), 0.1, np.float32), "b": np.zeros(3, np.float32)}
    for round_number in range(1, rounds + 1):
        update = _update(local, records=400)
        update.plan = replace(PLAN, round=round_number, compression=compression)
        assert run_steps(steps, update).accepted
    claims = [json.loads(sent.signed_metadata) for sent in wire.sent]
    assert all((c["compression"] is not None) == (compression is not None) for c in claims)
    with PrivacyLedger(ledger) as book:
        return [
            {
                "round": charge.round,
                "mechanism": charge.mechanism.to_json(),
                "epsilon_job": charge.epsilon_job,
                "epsilon_lifetime": charge.epsilon_lifetime,
                "claimed": claim["epsilon_round"],
                "signed_mechanism": claim["mechanism"],
            }
            for charge, claim in zip(book.history(), claims, strict=True)
        ]


@pytest.mark.parametrize(
    ("compression", "fraction"),
    [(EIGHT_BITS, 1.0), (TOP_2, 1.0), (TOP_2, 0.7)],
    ids=["8-bit", "top-2", "top-2-partial-feedback"],
)
def test_a_dp_jobs_ledger_is_identical_with_and_without_compression(
    tmp_path: Path, compression: RoundCompression, fraction: float
) -> None:
    plain = _dp_rounds(tmp_path / "plain.sqlite", None)
    compressed = _dp_rounds(tmp_path / "compressed.sqlite", compression, fraction)
    assert len(plain) == 3
    assert compressed == plain


def test_error_feedback_sends_over_the_rounds_what_was_meant_but_one_residual(tmp_path: Path) -> None:
    wire = Wire()
    compress = Compress(masked=False, error_feedback=True, rng=np.random.default_rng(1))
    steps: list[Step] = [check_weights, Clip(norm_cap=10.0, clip_range=4.0), compress, plain_encode, wire]
    rng = np.random.default_rng(2)
    meant, sent = np.zeros(LAYOUT.size), np.zeros(LAYOUT.size)
    for round_number in range(1, 9):
        local = {name: rng.normal(0, 0.3, value.shape).astype(np.float32) for name, value in GLOBAL.items()}
        update = _update(local)
        update.plan = replace(PLAN, round=round_number, compression=TOP_2)
        assert run_steps(steps, update).accepted
        meant += update.require_delta()
        payload = np.concatenate([chunk for _, chunk in wire.sent[-1].require_payload().chunks()])
        decoded, weight = read_plain_payload(payload.view(np.uint8), TOP_2, LAYOUT.size)
        assert weight == 40 and np.count_nonzero(decoded) <= 2
        sent += decoded
    residual = compress.feedback.residual
    assert residual is not None
    np.testing.assert_allclose(sent + residual, meant, atol=1e-5)


def test_partial_error_feedback_keeps_its_fraction_of_what_each_round_left_out() -> None:
    fraction = 0.7
    wire = Wire()
    compress = Compress(masked=False, error_feedback=True, feedback=ErrorFeedback(fraction))
    steps: list[Step] = [check_weights, Clip(norm_cap=10.0, clip_range=4.0), compress, plain_encode, wire]
    rng = np.random.default_rng(3)
    kept = np.zeros(LAYOUT.size)
    for round_number in range(1, 6):
        local = {name: rng.normal(0, 0.3, value.shape).astype(np.float32) for name, value in GLOBAL.items()}
        update = _update(local)
        update.plan = replace(PLAN, round=round_number, compression=TOP_2)
        assert run_steps(steps, update).accepted
        payload = np.concatenate([chunk for _, chunk in wire.sent[-1].require_payload().chunks()])
        decoded, _ = read_plain_payload(payload.view(np.uint8), TOP_2, LAYOUT.size)
        wanted = update.require_delta() + kept
        # Top-k chose from the update plus the kept residual, and sent those values whole.
        assert set(np.flatnonzero(decoded)) <= set(np.argsort(-np.abs(wanted))[:2])
        kept = fraction * (wanted - decoded)
        np.testing.assert_allclose(compress.feedback.residual, kept, atol=1e-6)


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5, float("nan")])
def test_an_error_feedback_fraction_outside_zero_to_one_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        ErrorFeedback(fraction)


def test_a_denied_update_leaves_the_residual_as_it_was() -> None:
    compress = Compress(masked=False, error_feedback=True, rng=np.random.default_rng(1))
    local = {"w": np.full((2, 3), 0.3, np.float32), "b": np.full(3, -0.2, np.float32)}
    for accept in (True, False):
        before = None if compress.feedback.residual is None else compress.feedback.residual.copy()
        update = _update(local)
        update.plan = replace(PLAN, compression=TOP_2)
        steps: list[Step] = [check_weights, Clip(norm_cap=10.0, clip_range=4.0), compress, plain_encode, Wire(accept)]
        assert run_steps(steps, update).accepted is accept
        if accept:
            assert compress.feedback.residual is not None and np.count_nonzero(compress.feedback.residual) == 7
        else:
            np.testing.assert_array_equal(compress.feedback.residual, before)
