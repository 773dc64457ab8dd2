"""An update from a runtime the job does not allow, or of another model architecture, is denied
with ``update_incompatible`` before its payload is read, and the denial is in the audit log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from fedsilo import __version__
from fedsilo.api import FederatedJob
from fedsilo.protocol import architecture_fingerprint

from .conftest import LENGTH, WEIGHTS, Hub, job_document, running_hub


def _payload() -> np.ndarray:
    payload = np.full(LENGTH, 10.0, np.float32)
    payload[-1] = 100
    return payload


def _pinned(*versions: str) -> dict[str, object]:
    return {"normCap": 5.0, "dataClass": "internal", "fedsiloVersions": list(versions)}


def test_an_update_of_another_architecture_is_denied_before_its_payload(hub: Hub) -> None:
    a, b = hub.silos["a"], hub.silos["b"]
    assert hub.open_round() == 1
    # Another model: one more output (float32, same names), so another fingerprint.
    other = {"w": np.zeros((4, 4), np.float32), "b": np.zeros(4, np.float32)}
    # A payload that would fail its own checks (wrong length) shows the payload was never read.
    short = _payload()[:3]
    denied = a.submit(a.metadata(short, architecture=architecture_fingerprint(other)), short)
    assert not denied.accepted
    assert denied.reasons[0].startswith("update_incompatible: the model architecture")
    accepted = b.submit(b.metadata(_payload()), _payload())
    assert accepted.accepted, accepted.reasons
    stats = hub.first_summary().silos["a"]
    assert not stats.accepted and stats.reasons == denied.reasons
    (recorded,) = [r for r in hub.records() if r["silo"] == "a"]
    assert recorded["decision"] == "deny" and recorded["reasons"] == list(denied.reasons)


def test_a_dtype_change_alone_is_another_architecture() -> None:
    as_float64 = {name: array.astype(np.float64) for name, array in WEIGHTS.items()}
    assert architecture_fingerprint(as_float64) != architecture_fingerprint(WEIGHTS)
    reordered = dict(reversed(list(WEIGHTS.items())))
    assert architecture_fingerprint(reordered) == architecture_fingerprint(WEIGHTS)


def test_a_job_that_pins_versions_denies_an_update_from_another_release(tmp_path: Path) -> None:
    with running_hub(tmp_path, ["a", "b"], policy=_pinned(__version__, "0.0.9")) as hub:
        a, b = hub.silos["a"], hub.silos["b"]
        assert hub.open_round() == 1
        older = a.submit(a.metadata(_payload(), fedsilo_version="0.0.8"), _payload())
        assert not older.accepted
        assert older.reasons[0].startswith(
            f"update_incompatible: fedsilo 0.0.8 is not among the job's versions (0.0.9, {__version__}"
        )
        current = b.submit(b.metadata(_payload()), _payload())
        assert current.accepted, current.reasons


def test_an_unpinned_job_accepts_any_release_of_the_same_architecture(hub: Hub) -> None:
    a = hub.silos["a"]
    assert hub.open_round() == 1
    verdict = a.submit(a.metadata(_payload(), fedsilo_version="9.9.9"), _payload())
    assert verdict.accepted, verdict.reasons


@pytest.mark.parametrize(
    ("versions", "problem"),
    [([], "at least 1 item"), (["latest"], "String should match pattern"), ([""], "at least 1 character")],
)
def test_a_bad_version_pin_names_the_field(versions: list[str], problem: str) -> None:
    with pytest.raises(ValidationError) as raised:
        FederatedJob.model_validate(job_document(["a"], policy=_pinned(*versions)))
    assert "fedsiloVersions" in str(raised.value) and problem in str(raised.value)
