"""``fedsilo run --metrics-port`` takes a TCP port (0: any free one) and refuses anything else, naming the flag."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_bad_metrics_port_is_refused_naming_the_flag(port: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fedsilo", "run", str(ROOT / "examples" / "quickstart.yaml"), "--metrics-port", port],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 2
    assert "--metrics-port must be a port number from 0 to 65535" in result.stderr and repr(port) in result.stderr
