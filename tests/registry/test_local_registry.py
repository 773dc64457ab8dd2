"""Every round's model is stored with a lineage that names its job, round, inputs and digest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedsilo.registry import Lineage, LocalRegistry, RegistryError


def _lineage(round_number: int) -> Lineage:
    return Lineage(
        job="quickstart",
        round=round_number,
        model_digest="",
        parent_digest=None,
        participants=("a", "b"),
        update_digests={"a": "sha256:aa", "b": "sha256:bb"},
        metrics={"accuracy": 0.9},
    )


def test_saved_models_are_listed_shown_and_loaded(tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path)
    weights = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    for r in (1, 2):
        registry.save(weights, _lineage(r))
    assert [m.lineage.round for m in registry.list("quickstart")] == [1, 2]
    latest = registry.show("quickstart")
    assert latest.lineage.round == 2
    assert latest.lineage.model_digest.startswith("sha256:")
    np.testing.assert_array_equal(registry.load(latest)["w"], weights["w"])


def test_a_tampered_model_file_is_detected(tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path)
    ref = registry.save({"w": np.zeros(4, np.float32)}, _lineage(1))
    data = bytearray(Path(ref.path).read_bytes())
    data[-1] ^= 1
    Path(ref.path).write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="does not match its recorded digest"):
        registry.load(ref)


def test_an_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="no models for job 'nope'"):
        LocalRegistry(tmp_path).show("nope")
