"""A real OPA server for integration tests: ``opa run --server`` on a free loopback port.

Tests of the policy engine and of the aggregator's policy gate start one over a bundle
directory (``policies/``) or over policy files written to a temporary directory; the
``opa_binary`` fixture (src/fedsilo_testing/fixtures.py) gives the pinned binary.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from fedsilo_testing import _process
from fedsilo_testing.tools import tool_path


class OpaServer:
    """``opa run --server`` on 127.0.0.1 over policy and data paths; a context manager.

    Args:
        paths: policy/data files or directories to load (``opa run`` arguments).
        bundle: load each path as a bundle (``--bundle``: a directory with a ``.manifest``
            and roots, as ``policies/`` is) rather than as loose files.
        decision_logs: log every decision to the server's console, i.e. to :attr:`log`.
        binary: the opa executable; the pinned build (or ``OPA_BIN``) if not given.
        log: where the server's output goes; a temporary file if not given.
        extra_args: more ``opa run`` flags (e.g. ``--set=...``).
        startup_timeout: seconds to wait for ``/health``.
    """

    def __init__(
        self,
        *paths: Path | str,
        bundle: bool = False,
        decision_logs: bool = False,
        binary: Path | None = None,
        log: Path | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
    ) -> None:
        if not paths:
            raise ValueError("OpaServer needs at least one policy or bundle path")
        self.paths = tuple(Path(path) for path in paths)
        self.bundle = bundle
        self.decision_logs = decision_logs
        self.binary = binary
        self.log = log if log is not None else Path(tempfile.mkstemp(prefix="fedsilo-opa-", suffix=".log")[1])
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self.port = 0
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> OpaServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server; return when ``/health`` (with bundles, if any) says ok."""
        binary = self.binary if self.binary is not None else tool_path("opa")
        for _ in range(3):  # another process may take the free port first
            self.port = _process.free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            args = [
                str(binary),
                "run",
                "--server",
                f"--addr=127.0.0.1:{self.port}",
                # No call home from a test: no version check (and telemetry off with it).
                "--skip-version-check",
                "--log-format=text",
                "--log-level=info",
            ]
            if self.decision_logs:
                args.append("--set=decision_logs.console=true")
            if self.bundle:
                args.append("--bundle")
            args += [*self.extra_args, *(str(path) for path in self.paths)]
            self._process = _process.start(args, self.log)
            if self._wait_healthy():
                return
            _process.stop(self._process)
            if "address already in use" not in _process.tail(self.log, 50):
                break
        raise RuntimeError(f"OPA did not become healthy; {self.log}:\n{_process.tail(self.log)}")

    def stop(self) -> None:
        """Stop the server (terminate, then kill)."""
        _process.stop(self._process)
        self._process = None

    def query(self, path: str, input: Any = None) -> Any:
        """POST ``input`` to ``/v1/data/<path>`` and return the decision's ``result``.

        ``None`` when the path is undefined (OPA answers without a ``result``).
        """
        return self.post(f"/v1/data/{path.strip('/')}", {"input": input}).get("result")

    def post(self, path: str, document: Any) -> Any:
        """POST a JSON document to an API path and decode the JSON answer."""
        request = urllib.request.Request(
            self.url + path, data=json.dumps(document).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def _wait_healthy(self) -> bool:
        health = f"{self.url}/health" + ("?bundles" if self.bundle else "")
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(health, timeout=1) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        _process.stop(self._process)
        raise RuntimeError(
            f"OPA was not healthy after {self.startup_timeout:.0f}s; {self.log}:\n{_process.tail(self.log)}"
        )
