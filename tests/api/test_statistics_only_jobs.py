"""``spec.rounds: 0`` is a statistics-only job: it needs a statistics phase and refuses what acts on training,
each refusal naming the field and the fix (the same cases run against the real API server in
``corpus/statistics_only.yaml``, and the CRD's transition rule in ``tests/crds``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsilo.api import ManifestError, parse_manifest

TABULAR = Path(__file__).parents[2] / "examples" / "tabular.yaml"


def _manifest(**spec: Any) -> str:
    """The tabular example (federated standardization) as a statistics-only job, with ``spec`` merged in."""
    documents = list(yaml.safe_load_all(TABULAR.read_text()))
    documents[0]["spec"].update({"rounds": 0, **spec})
    return yaml.safe_dump_all(documents, sort_keys=False)


def _problems(**spec: Any) -> str:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_manifest(**spec), "job.yaml")
    return str(caught.value)


def test_a_statistics_only_job_reads_as_one() -> None:
    spec = parse_manifest(_manifest(), "job.yaml").job.spec
    assert spec.statistics_only and spec.rounds == 0
    assert spec.data.preprocessing is not None and spec.data.preprocessing.federated
    trains = parse_manifest(TABULAR.read_text(), "job.yaml").job.spec
    assert not trains.statistics_only


def test_private_statistics_alone_charge_the_silos() -> None:
    private = {"source": "tabular", "preprocessing": {"scaling": "minmax", "epsilon": 1.0}}
    spec = parse_manifest(_manifest(data=private)).job.spec
    assert spec.statistics_only and spec.charges_silos


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"data": {"source": "tabular"}}, "spec.rounds 0 makes a statistics-only job"),
        ({"data": {"source": "tabular", "preprocessing": {"scaling": "silo"}}}, "set spec.data.preprocessing"),
        ({"data": {"source": "tabular", "preprocessing": {"scaling": "none"}}}, "or set spec.rounds to 1 or more"),
        ({"rollback": {"toRound": 0, "reason": "retrain"}}, "spec.rollback does not apply to a statistics-only job"),
        ({"personalization": {"privateHead": True}}, "remove spec.personalization, or set spec.rounds to 1 or more"),
        ({"compression": {"bits": 8}}, "spec.compression does not apply to a statistics-only job"),
        ({"privacy": {"mode": "silo", "noiseMultiplier": 1.0}}, "set spec.data.preprocessing.epsilon for private"),
        ({"rounds": -1}, "spec.rounds"),
    ],
)
def test_each_misfit_of_a_statistics_only_job_is_named_with_its_fix(spec: dict[str, Any], words: str) -> None:
    message = _problems(**spec)
    assert words in message
    assert "Fix:" in message
