"""A user's csv or npz file loads, is standardized from its training split, and bad files say what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedsilo.api import FederatedJobSpec
from fedsilo.datasets import DataError, load_pooled_data, load_silo_data

from .conftest import job_spec


def write_csv(path: Path, records: int = 120, seed: int = 0, label: str = "diagnosis") -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal([100.0, -5.0, 0.01], [30.0, 2.0, 0.001], size=(records, 3))
    y = (x[:, 0] > 100).astype(int)
    lines = [f"age,{label},dose,ratio"] + [f"{a:.4f},{t},{b:.4f},{c:.6f}" for (a, b, c), t in zip(x, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def csv_spec(path: Path, label: str = "diagnosis", silos: int = 3) -> FederatedJobSpec:
    return job_spec(silos=silos, data={"source": "csv", "path": str(path), "labelColumn": label})


def test_a_csv_file_is_partitioned_and_standardized_from_the_training_split(tmp_path: Path) -> None:
    spec = csv_spec(write_csv(tmp_path / "records.csv"))
    data = load_silo_data(spec, 0, 3)
    assert data.input_shape == (3,)
    assert data.num_classes == 2
    assert np.allclose(data.train_x.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(data.train_x.std(axis=0), 1, atol=1e-4)
    # The held-out split is scaled with the training split's statistics, so it is not exactly standard.
    assert not np.allclose(data.test_x.mean(axis=0), 0, atol=1e-5)


def test_the_missing_label_column_is_named(tmp_path: Path) -> None:
    spec = csv_spec(write_csv(tmp_path / "records.csv"), label="outcome")
    with pytest.raises(DataError, match=r"no column named 'outcome' \(spec\.data\.labelColumn\); the header has age"):
        load_silo_data(spec, 0, 3)


def test_a_non_numeric_value_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    path.write_text("age,label\n31,1\nunknown,0\n")
    with pytest.raises(DataError, match=r"records\.csv: every value must be a number"):
        load_silo_data(csv_spec(path, label="label", silos=1), 0, 1)


def test_a_ragged_row_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    path.write_text("age,label\n31,1\n40,0,7\n")
    with pytest.raises(DataError, match="line 3: 3 values, but the header names 2 columns"):
        load_silo_data(csv_spec(path, label="label", silos=1), 0, 1)


def test_fractional_labels_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    path.write_text("age,label\n" + "".join(f"{i},0.5\n" for i in range(30)))
    with pytest.raises(DataError, match="column 'label': labels must be whole numbers"):
        load_silo_data(csv_spec(path, label="label", silos=1), 0, 1)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"absent\.csv: cannot read"):
        load_silo_data(csv_spec(tmp_path / "absent.csv"), 0, 3)


def test_an_npz_file_with_image_records_keeps_their_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "images.npz", x=rng.random((90, 1, 4, 4)), y=np.arange(90) % 3)
    spec = job_spec(data={"source": "npz", "path": str(tmp_path / "images.npz")})
    data = load_silo_data(spec, 2, 3)
    assert data.input_shape == (1, 4, 4)
    assert data.num_classes == 3
    assert data.train_x.shape[1:] == (1, 4, 4)


def test_an_npz_file_without_y_names_the_arrays_it_has(tmp_path: Path) -> None:
    np.savez(tmp_path / "data.npz", x=np.zeros((40, 2)), labels=np.zeros(40))
    spec = job_spec(data={"source": "npz", "path": str(tmp_path / "data.npz")})
    with pytest.raises(DataError, match=r"needs arrays named 'x' and 'y' \(has \['labels', 'x'\]\)"):
        load_silo_data(spec, 0, 3)


def test_an_npz_file_with_a_label_per_record_too_few_says_so(tmp_path: Path) -> None:
    np.savez(tmp_path / "data.npz", x=np.zeros((40, 2)), y=np.zeros(39))
    spec = job_spec(data={"source": "npz", "path": str(tmp_path / "data.npz")})
    with pytest.raises(DataError, match=r"y must hold one label per record of x \(40\)"):
        load_silo_data(spec, 0, 3)


def test_a_silo_with_its_own_file_reads_all_of_it(tmp_path: Path) -> None:
    spec = csv_spec(write_csv(tmp_path / "shared.csv"))
    own = write_csv(tmp_path / "own.csv", records=50, seed=9)
    data = load_silo_data(spec, 1, 3, path_override=str(own))
    assert len(data.train_y) + len(data.test_y) == 50


def test_pooling_silo_files_of_different_widths_is_refused(tmp_path: Path) -> None:
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("a,diagnosis\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    spec = csv_spec(write_csv(tmp_path / "wide.csv"))
    with pytest.raises(DataError, match="different shapes"):
        load_pooled_data(spec, 3, {0: str(narrow)})
