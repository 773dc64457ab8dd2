"""``fedsilo stats``: the table, the JSON, the histogram grid and the fitted file; clear exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fedsilo.cli import main
from fedsilo.datasets import FittedPreprocessing
from fedsilo.statistics import FederatedStatistics

EXAMPLE = Path(__file__).parents[2] / "examples" / "tabular.yaml"


def _manifest(tmp_path: Path, **preprocessing: object) -> Path:
    documents = list(yaml.safe_load_all(EXAMPLE.read_text()))
    documents[0]["spec"]["data"]["tabular"]["recordsPerSilo"] = 400
    documents[0]["spec"]["data"]["preprocessing"].update(preprocessing)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return path


def test_stats_prints_the_table_and_writes_json_plot_and_fitted_preprocessing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["stats", str(_manifest(tmp_path)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "feature" in printed and "x12 (categorical)" in printed and "exact totals" in printed
    statistics = FederatedStatistics.parse((out / "statistics.json").read_bytes())
    assert len(statistics.silos) == 4
    assert (out / "histograms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fitted = FittedPreprocessing.read(out / "preprocessing.json")
    assert fitted.statistics_digest == statistics.digest()
    assert [c.column for c in fitted.categorical] == [12, 13]
    # The hub fitted it from the totals it received over gRPC, and its audit log says so.
    audit = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    (phase,) = [r for r in audit if r.get("operation") == "statistics"]
    assert phase["details"]["preprocessing_digest"] == fitted.digest()
    assert f"audit log: {out / 'audit.jsonl'}" in printed


def test_settings_that_do_not_fit_the_data_exit_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stats", str(_manifest(tmp_path, categorical=[99])), "--out", str(tmp_path / "o")]) == 2
    assert "categorical names column 99" in capsys.readouterr().err


def test_too_few_silos_with_enough_records_exit_1_with_their_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stats", str(_manifest(tmp_path, minCount=100000)), "--out", str(tmp_path / "o")]) == 1
    assert "below_min_count" in capsys.readouterr().err


def test_an_invalid_manifest_exits_2(tmp_path: Path) -> None:
    path = _manifest(tmp_path, bins=1)
    assert main(["stats", str(path)]) == 2
