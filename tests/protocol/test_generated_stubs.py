"""The committed gRPC stubs are exactly what the pinned generator makes from the .proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
GENERATED = ("fedsilo_pb2.py", "fedsilo_pb2.pyi", "fedsilo_pb2_grpc.py")


def test_regenerating_the_stubs_changes_nothing(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen-protos"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
    )
    for name in GENERATED:
        fresh = (tmp_path / "fedsilo" / "protocol" / name).read_text()
        committed = (ROOT / "src" / "fedsilo" / "protocol" / name).read_text()
        assert fresh == committed, f"{name} is stale: run scripts/gen-protos"
