"""The README's own first command: the quickstart runs end to end and matches the baseline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import QUICKSTART, ROOT


def test_the_quickstart_reaches_97_percent_of_the_centralized_baseline(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedsilo",
            "run",
            str(QUICKSTART),
            "--json",
            "--workdir",
            str(tmp_path / "run"),
            "--registry",
            str(tmp_path / "registry"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    report = json.loads(completed.stdout)
    assert report["status"] == "succeeded"
    assert report["aggregation"] == "masked"
    assert report["isolation"].startswith("applied")
    assert len(report["rounds"]) == 15
    assert report["final_accuracy"] >= 0.97 * report["centralized_accuracy"], report
    assert Path(report["plot"]).stat().st_size > 10_000
    for row in report["rounds"]:
        assert sorted(row["accepted"]) == sorted(row["participants"])
        assert all(report_bytes > 0 for report_bytes in row["bytes_up"].values())
    models = subprocess.run(
        [sys.executable, "-m", "fedsilo", "models", "list", "--json", "--registry", str(tmp_path / "registry")],
        capture_output=True,
        text=True,
        check=True,
    )
    lineage = json.loads(models.stdout)
    assert [m["round"] for m in lineage] == list(range(1, 16))
    assert set(lineage[-1]["update_digests"]) == {"hospital-a", "hospital-b", "hospital-c"}
