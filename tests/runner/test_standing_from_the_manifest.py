"""The standing a running hub reads from its manifest at round boundaries, and the files it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsilo.api import ManifestError
from fedsilo.identity import SigningKey
from fedsilo.runner._standing import manifest_standing

KEYS = {name: SigningKey.generate().public_key for name in ("hospital-a", "hospital-b")}


def _write(path: Path, *, job: str = "trial", silos: dict[str, dict[str, Any]] | None = None) -> Path:
    specs = silos or {name: {"identity": {"publicKey": key.to_base64()}} for name, key in KEYS.items()}
    documents = [
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "FederatedJob",
            "metadata": {"name": job},
            "spec": {"silos": list(specs), "aggregation": {"mode": "plain"}, "model": {"builtin": "mlp"}},
        },
        *(
            {"apiVersion": "fedsilo.io/v1alpha1", "kind": "Silo", "metadata": {"name": name}, "spec": spec}
            for name, spec in specs.items()
        ),
    ]
    path.write_text(yaml.safe_dump_all(documents))
    return path


def test_each_silo_gets_its_registered_key_and_its_suspension(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "job.yaml",
        silos={
            "hospital-a": {"identity": {"publicKey": KEYS["hospital-a"].to_base64()}},
            "hospital-b": {
                "identity": {"publicKey": KEYS["hospital-b"].to_base64()},
                "suspended": {"reason": "under review"},
            },
        },
    )
    standing = manifest_standing(path, "trial")()
    assert standing["hospital-a"].key == KEYS["hospital-a"] and standing["hospital-a"].suspension is None
    assert standing["hospital-b"].suspension == "under review"


def test_the_local_run_keeps_its_own_keys_and_takes_only_suspensions(tmp_path: Path) -> None:
    path = _write(tmp_path / "job.yaml", silos={"hospital-a": {"suspended": {"reason": "x"}}, "hospital-b": {}})
    own = {name: SigningKey.generate().public_key for name in KEYS}
    standing = manifest_standing(path, "trial", own)()
    assert standing["hospital-a"].key == own["hospital-a"]
    assert standing["hospital-a"].suspension == "x"


def test_a_file_that_names_another_job_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "job.yaml", job="other")
    with pytest.raises(ValueError, match="now holds job 'other', not 'trial'"):
        manifest_standing(path, "trial")()


def test_a_silo_without_a_key_is_refused_in_a_cluster(tmp_path: Path) -> None:
    path = _write(tmp_path / "job.yaml", silos={"hospital-a": {}, "hospital-b": {}})
    with pytest.raises(ValueError, match=r"Silo/hospital-a has no spec\.identity\.publicKey"):
        manifest_standing(path, "trial")()


@pytest.mark.parametrize(
    ("suspension", "words"),
    [
        ({"reason": "   "}, "suspended.reason is blank"),
        ({"reason": ""}, "spec.suspended.reason"),
        ({"reason": "two\nlines"}, "spec.suspended.reason"),
        ({}, "spec.suspended.reason"),
        ({"reason": "ok", "until": "tomorrow"}, "spec.suspended.until"),
    ],
)
def test_a_bad_suspension_in_the_file_is_refused_naming_the_field(
    tmp_path: Path, suspension: dict[str, Any], words: str
) -> None:
    path = _write(
        tmp_path / "job.yaml",
        silos={
            "hospital-a": {"identity": {"publicKey": KEYS["hospital-a"].to_base64()}, "suspended": suspension},
            "hospital-b": {"identity": {"publicKey": KEYS["hospital-b"].to_base64()}},
        },
    )
    with pytest.raises(ManifestError) as refused:
        manifest_standing(path, "trial")()
    assert words in str(refused.value)


def test_a_half_written_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "job.yaml")
    path.write_text(path.read_text()[:40])
    with pytest.raises(ManifestError):
        manifest_standing(path, "trial")()
