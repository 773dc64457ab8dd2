"""Every new input refuses what it cannot use, naming the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from fedsilo.api import FederatedJobSpec, PreprocessingSpec
from fedsilo.datasets import DataError, FittedPreprocessing, load_pooled_data, load_silo_data
from fedsilo.privacy import GaussianEvent, mechanism_from_json
from fedsilo.runner import run_statistics
from fedsilo.statistics import decode_wide, encode_wide
from fedsilo.statistics._wide import MAX_MAGNITUDE, WideOverflow

from .conftest import silos_of, tabular_spec


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({}, "scaling"),
        ({"scaling": "zscore"}, "scaling"),
        ({"scaling": "standardize", "categorical": [1, 1]}, "categorical"),
        ({"scaling": "standardize", "categorical": [-1]}, "categorical"),
        ({"scaling": "standardize", "minCount": 0}, "minCount"),
        ({"scaling": "standardize", "bins": 1}, "bins"),
        ({"scaling": "standardize", "epsilon": 0}, "epsilon"),
        ({"scaling": "standardize", "delta": 1.5}, "delta"),
        ({"scaling": "standardize", "impute": "zero"}, "impute"),
        ({"scaling": "standardize", "maxCategories": 1}, "maxCategories"),
        ({"scaling": "standardize", "unknown": 1}, "unknown"),
    ],
)
def test_a_bad_preprocessing_block_names_its_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as error:
        PreprocessingSpec.model_validate(document)
    assert field in str(error.value)


def test_a_tabular_generator_too_large_for_a_node_is_refused() -> None:
    with pytest.raises(ValidationError, match="recordsPerSilo"):
        tabular_spec(tabular={"recordsPerSilo": 1_000_000, "numFeatures": 1000})


def test_a_categorical_column_beyond_the_records_is_named() -> None:
    spec = tabular_spec({"scaling": "standardize", "categorical": [40]})
    with pytest.raises(DataError, match=r"categorical names column 40, but records have 14 features"):
        run_statistics("beyond", spec, silos_of(spec))


def test_missing_values_without_imputation_are_refused_with_the_fix() -> None:
    spec = tabular_spec({"scaling": "standardize"}, tabular={"missingFraction": 0.1})
    with pytest.raises(DataError, match=r"preprocessing\.impute"):
        load_silo_data(spec, 0, 4)


def test_federated_preprocessing_without_its_fitted_transform_is_refused() -> None:
    spec = tabular_spec({"scaling": "standardize"})
    with pytest.raises(DataError, match="statistics phase"):
        load_silo_data(spec, 0, 4)
    with pytest.raises(DataError, match="statistics phase"):
        load_pooled_data(spec, 4)


def _fitted_document() -> dict[str, Any]:
    return {
        "format": "fedsilo.preprocessing/v1",
        "job": "job",
        "scaling": "standardize",
        "num_features": 2,
        "numeric": [{"column": 0, "center": 1.0, "scale": 2.0, "fill": None}],
        "categorical": [{"column": 1, "vocabulary": [0, 3]}],
        "statistics_digest": "sha256:" + "0" * 64,
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"format": "fedsilo.preprocessing/v1", "format": "x"}', "duplicate key"),
        ("[1, 2]", "not a JSON object"),
        ("not json", "not JSON"),
    ],
)
def test_a_malformed_fitted_file_is_refused_naming_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "preprocessing.json"
    path.write_text(text)
    with pytest.raises(DataError, match=problem) as error:
        FittedPreprocessing.read(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"num_features": 3}, "exactly once"),
        ({"numeric": [{"column": 0, "center": 1.0, "scale": 0.0, "fill": None}]}, "scale"),
        ({"categorical": [{"column": 1, "vocabulary": [2, 2]}]}, "repeats a code"),
        ({"scaling": "robust"}, "scaling"),
        ({"statistics_digest": "md5:00"}, "statistics_digest"),
        ({"extra": True}, "extra"),
    ],
)
def test_a_fitted_document_that_does_not_hold_together_is_refused(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    import json

    path = tmp_path / "preprocessing.json"
    path.write_text(json.dumps(_fitted_document() | change))
    with pytest.raises(DataError, match=problem):
        FittedPreprocessing.read(path)


def test_a_fitted_transform_refuses_records_of_another_width() -> None:
    fitted = FittedPreprocessing.from_document(_fitted_document())
    with pytest.raises(DataError, match="fitted for records of 2 features"):
        fitted.apply(np.zeros((3, 5), dtype=np.float32))
    out = fitted.apply(np.array([[3.0, 3.0], [1.0, 7.0]], dtype=np.float32))
    np.testing.assert_array_equal(out, [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])


def test_values_beyond_the_wide_range_are_refused_and_the_rest_round_trip() -> None:
    with pytest.raises(WideOverflow, match="value 1"):
        encode_wide(np.array([1.0, MAX_MAGNITUDE * 2]))
    with pytest.raises(WideOverflow):
        encode_wide(np.array([float("nan")]))
    values = np.array([0.0, -3.5, 1e15, 12345.678])
    assert [float(v) for v in decode_wide(encode_wide(values))] == pytest.approx(values, rel=1e-12)


def test_a_statistics_mechanism_says_so_and_an_unknown_purpose_is_refused() -> None:
    event = GaussianEvent(2.0, 2, purpose="statistics")
    assert mechanism_from_json(event.to_json()) == event
    assert "purpose" not in GaussianEvent(2.0, 1).to_json()
    with pytest.raises(ValueError, match="purpose"):
        mechanism_from_json({"kind": "gaussian", "noise_multiplier": 2.0, "count": 1, "purpose": "curiosity"})
    with pytest.raises(ValueError, match="purpose"):
        GaussianEvent(2.0, 1, purpose="curiosity")


def test_an_unset_preprocessing_keeps_per_silo_standardization_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    spec = FederatedJobSpec.model_validate(
        {"silos": ["a", "b"], "model": {"builtin": "mlp"}, "data": {"source": "breast_cancer"}}
    )
    data = load_silo_data(spec, 0, 2)
    assert np.allclose(data.train_x.mean(axis=0), 0, atol=1e-4)
