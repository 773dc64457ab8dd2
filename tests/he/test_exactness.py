"""The fused sum equals the plaintext weighted mean within the stated CKKS error bound, at every size;
and silo-level DP noise is planned for a hub that sees only the sum."""

from __future__ import annotations

import numpy as np
import pytest

from fedsilo.api import FederatedJobSpec
from fedsilo.he import EncryptedSum, decode_with, encrypt_update
from fedsilo.privacy import plan_for_silo

from .conftest import Federation


@pytest.mark.parametrize("length", [1, 100, 2047, 2048, 2049, 6000])
def test_the_decrypted_weighted_mean_matches_the_plaintext_one(federation: Federation, length: int) -> None:
    params = federation.params
    rng = np.random.default_rng(length)
    records = {silo: int(rng.integers(50, 5000)) for silo in federation.shares}
    updates = {silo: rng.uniform(-4.0, 4.0, length).astype(np.float32) for silo in federation.shares}
    total = EncryptedSum(params, params.chunks(length))
    for silo, update in updates.items():
        # What a sidecar encrypts: its clipped update weighted by its records, scaled so the sum fits.
        total.add(encrypt_update(params, federation.key, update.astype(np.float64) * records[silo] / 10_000))
    summed = decode_with(params, federation.shares.values(), total.chunks(), length)
    weight = sum(records.values()) / 10_000
    mean = summed / weight
    expected = sum(updates[s].astype(np.float64) * records[s] for s in updates) / sum(records.values())
    assert np.max(np.abs(mean - expected)) <= params.error_bound(len(updates)) / weight
    # The bound is not vacuous: it is far below the values' own scale.
    assert params.error_bound(len(updates)) / weight < 1e-4


def test_a_sum_beyond_the_decodable_range_is_refused_before_encryption(federation: Federation) -> None:
    params = federation.params
    with pytest.raises(ValueError, match="max_sum_magnitude"):
        encrypt_update(params, federation.key, np.array([params.max_sum_magnitude() * 2]))


@pytest.mark.parametrize("bad", [np.array([]), np.array([1.0, np.nan]), np.array([np.inf])])
def test_an_empty_or_non_finite_update_is_refused(federation: Federation, bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="finite"):
        encrypt_update(federation.params, federation.key, bad)


@pytest.mark.parametrize(("mode", "shared"), [("homomorphic", True), ("masked", True), ("plain", False)])
def test_silo_level_noise_is_shared_by_the_quorum_when_the_hub_sees_only_the_sum(mode: str, shared: bool) -> None:
    spec = FederatedJobSpec.model_validate(
        {
            "silos": ["a", "b", "c", "d"],
            "minSilos": 4,
            "model": {"builtin": "mlp"},
            "aggregation": {"mode": mode},
            "privacy": {"mode": "silo", "noiseMultiplier": 1.0, "delta": 1e-5},
            "policy": {"normCap": 2.0},
        }
    )
    plan = plan_for_silo(spec, 100)
    assert plan is not None and plan.noise_std is not None
    assert plan.noise_std == pytest.approx(2.0 / 2 if shared else 2.0)
