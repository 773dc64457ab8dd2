"""The fitted preprocessing is kept by digest beside the models; a sealed lineage names it and verify checks it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedsilo.aggregator._record import seal_model
from fedsilo.identity import SigningKey, sha256_digest
from fedsilo.protocol import GlobalModelClaim, encode_weights
from fedsilo.registry import (
    Lineage,
    LocalRegistry,
    ModelVerificationError,
    lineage_digest,
    preprocessing_path,
    verify_model,
)
from fedsilo.runner import run_statistics
from fedsilo.statistics import fit_preprocessing

from .conftest import silos_of, tabular_spec


def _sealed_model(registry: LocalRegistry, key: SigningKey, digest: str) -> Path:
    weights = {"w": np.ones((2, 2), dtype=np.float32)}
    model_digest = sha256_digest(encode_weights(weights))
    lineage = Lineage(
        job="versioned",
        round=1,
        model_digest=model_digest,
        parent_digest=None,
        participants=("bank-a",),
        update_digests={},
        evidence={"preprocessing": digest},
        created="2026-01-01T00:00:00+00:00",
    )
    seal = seal_model(
        key,
        GlobalModelClaim(
            job="versioned",
            round=1,
            model_digest=model_digest,
            parent_digest=None,
            lineage_digest=lineage_digest(lineage),
        ),
    )
    return Path(registry.save(weights, lineage, seal).path)


def test_a_model_names_its_fitted_preprocessing_and_verify_notices_a_changed_file(tmp_path: Path) -> None:
    spec = tabular_spec({"scaling": "standardize", "categorical": [12]})
    assert spec.data.preprocessing is not None
    fitted = fit_preprocessing(run_statistics("versioned", spec, silos_of(spec)).statistics, spec.data.preprocessing)
    registry = LocalRegistry(tmp_path)
    digest = registry.save_preprocessing("versioned", fitted.canonical_bytes())
    assert digest == fitted.digest()
    key = SigningKey.generate()
    _sealed_model(registry, key, digest)
    (ref,) = registry.list("versioned")
    verify_model(ref, key.public_key)

    kept = preprocessing_path(tmp_path / "versioned", digest)
    kept.write_bytes(kept.read_bytes().replace(b'"center":', b'"center": ', 1))
    with pytest.raises(ModelVerificationError, match="fitted preprocessing is sha256:"):
        verify_model(ref, key.public_key)
    kept.unlink()
    with pytest.raises(ModelVerificationError, match="cannot be read"):
        verify_model(ref, key.public_key)
