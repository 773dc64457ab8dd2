"""A plain payload's signed norm is checked one float64 slice at a time, not on whole float64 copies.

The check converted the payload to float64 and divided it by its weight, two whole copies of
twice the payload's size: 1.5 GiB per upload checked at 100M parameters, the largest items of
the plain hub's heap at its peak (``bench_big_model.py ... trace``). The bound is an allocation
count (tracemalloc), not a timing.
"""

from __future__ import annotations

import secrets
import tracemalloc

import numpy as np
import pytest

from fedsilo import __version__
from fedsilo.aggregator._claims import check_cleartext_claims
from fedsilo.policy import Refusal
from fedsilo.protocol import UpdateMetadata

VALUES = 4_000_000
RECORDS = 100


def _payload() -> np.ndarray:
    update = np.random.default_rng(0).standard_normal(VALUES, dtype=np.float32) * np.float32(1e-2)
    return np.append(update * np.float32(RECORDS), np.float32(RECORDS))


def _claims(payload: np.ndarray, norm: float) -> UpdateMetadata:
    return UpdateMetadata(
        job="claims",
        round=1,
        silo="a",
        nonce=secrets.token_hex(16),
        l2_norm=norm,
        num_samples=RECORDS,
        vector_length=payload.size,
        dtype="float32",
        payload_digest="sha256:" + "0" * 64,
        epsilon_round=None,
        fedsilo_version=__version__,
        architecture="sha256:" + "0" * 64,
        mechanism=None,
    )


def _whole_norm(payload: np.ndarray) -> float:
    return float(np.linalg.norm(payload[:-1].astype(np.float64) / float(payload[-1])))


def test_the_norm_check_holds_a_few_slices_beside_the_payload() -> None:
    payload = _payload()
    claims = _claims(payload, _whole_norm(payload))
    tracemalloc.start()
    try:
        check_cleartext_claims(payload, claims, silo_level_dp=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Before: a float64 copy and a divided float64 copy, 4x the float32 payload.
    assert peak < payload.nbytes / 8, f"{peak} bytes held to check a {payload.nbytes}-byte payload"


def test_the_sliced_norm_is_the_whole_arrays_and_a_wrong_claim_is_still_refused() -> None:
    payload = _payload()
    norm = _whole_norm(payload)
    check_cleartext_claims(payload, _claims(payload, norm * (1 + 1e-6)), silo_level_dp=False)
    with pytest.raises(Refusal, match="L2 norm"):
        check_cleartext_claims(payload, _claims(payload, norm * 1.01), silo_level_dp=False)
