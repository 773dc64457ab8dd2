"""spec.personalization and spec.model.normalization: bad input is refused naming the field and the fix
(the same cases run against the real API server in ``corpus/personalization.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsilo.api import ManifestError, Normalization, parse_manifest

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart.yaml"


def _manifest(**spec: Any) -> str:
    documents = list(yaml.safe_load_all(QUICKSTART.read_text()))
    documents[0]["spec"].update(spec)
    return yaml.safe_dump_all(documents, sort_keys=False)


def _problems(**spec: Any) -> str:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_manifest(**spec), "job.yaml")
    return str(caught.value)


def test_a_personalized_job_reads_as_typed_fields() -> None:
    manifest = parse_manifest(
        _manifest(
            model={"builtin": "cnn", "normalization": "layer"},
            personalization={"privateHead": True, "privateNormalization": True, "fineTuneEpochs": 3},
        ),
        "job.yaml",
    )
    spec = manifest.job.spec
    assert spec.model.normalization is Normalization.LAYER
    assert spec.personalization is not None and spec.personalization.keeps_private
    assert spec.personalization.fine_tune_epochs == 3 and spec.personalization.private_parameters == []


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"personalization": {}}, "personalization changes nothing: set privateParameters"),
        ({"personalization": {"privateNormalization": True}}, "set model.normalization batch or layer"),
        (
            {
                "model": {"builtin": "mlp", "normalization": "batch"},
                "privacy": {"mode": "record", "noiseMultiplier": 1.0},
            },
            "use normalization layer",
        ),
        ({"model": {"builtin": "logistic_regression", "normalization": "batch"}}, "mlp and cnn models only"),
        ({"personalization": {"privateParameters": ["head", "head"]}}, "spec.personalization.privateParameters"),
        ({"personalization": {"privateParameters": ["a/b"]}}, "spec.personalization.privateParameters[0]"),
        ({"personalization": {"privateParameters": ["x"] * 65}}, "spec.personalization.privateParameters"),
        ({"personalization": {"fineTuneEpochs": 1001}}, "spec.personalization.fineTuneEpochs"),
        ({"personalization": {"fineTuneEpochs": "3"}}, "spec.personalization.fineTuneEpochs"),
        ({"personalization": {"privateHead": 1}}, "spec.personalization.privateHead"),
        ({"personalization": {"privateLayers": ["head"]}}, "spec.personalization.privateLayers"),
        ({"model": {"builtin": "mlp", "normalization": "instance"}}, "spec.model.normalization"),
    ],
    ids=[
        "nothing to do",
        "fedbn without normalization",
        "batch norm under dp-sgd",
        "normalization on logistic regression",
        "a name twice",
        "a path for a name",
        "too many names",
        "too many epochs",
        "epochs as text",
        "a number for a switch",
        "an unknown field",
        "an unknown normalization",
    ],
)
def test_bad_personalization_is_refused_naming_the_field(spec: dict[str, Any], words: str) -> None:
    assert words in _problems(**spec)
