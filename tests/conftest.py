"""Session fixtures shared by every topic: the Go-built tools and the real servers they run."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).parents[1]


def built_tool(name: str) -> Path:
    """A tool from scripts/build-tools (which honours overrides such as OPA_BIN), built if needed."""
    completed = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-tools"), name], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"scripts/build-tools failed:\n{completed.stderr[-3000:]}")
    paths = dict(line.split("=", 1) for line in completed.stdout.splitlines() if "=" in line)
    if name not in paths:
        raise RuntimeError(f"scripts/build-tools does not provide {name}")
    return Path(paths[name])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OpaServer:
    """A real ``opa run --server`` on loopback, serving the policies/ bundle."""

    def __init__(self, binary: Path, bundle: Path, log: Path) -> None:
        self.binary, self.bundle, self.log = binary, bundle, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(self.binary), "run", "--server", "--addr", f"127.0.0.1:{self.port}",
             "--set", "decision_logs.console=true", "--bundle", str(self.bundle)],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/health?bundles", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"OPA did not become healthy; see {self.log}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="session")
def opa_binary() -> Path:
    return built_tool("opa")


@pytest.fixture(scope="session")
def opa_server(opa_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaServer]:
    server = OpaServer(opa_binary, ROOT / "policies", tmp_path_factory.mktemp("opa") / "opa.log")
    server.start()
    yield server
    server.stop()


