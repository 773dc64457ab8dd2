"""The OPA server starts the way the operator and the chart start it (``opa_config`` and
``opa_run_args``): it serves the bundle at its manifest's revision and writes its own
decision log to the console."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from fedsilo.policy import OpaServerEngine, PolicyBundle, opa_config, opa_run_args
from tests.conftest import ROOT

from .conftest import VALID, varied


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.integration
def test_the_configured_server_decides_and_logs_each_decision(opa_binary: Path, tmp_path: Path) -> None:
    config = tmp_path / "opa-config.yaml"
    config.write_text(json.dumps(opa_config()))  # JSON is YAML
    address = f"127.0.0.1:{_free_port()}"
    log = tmp_path / "opa.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [str(opa_binary), *opa_run_args(ROOT / "policies", config_file=config, address=address)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://{address}/health?bundles", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and server.poll() is None, log.read_text()
            time.sleep(0.1)
        with OpaServerEngine(f"http://{address}") as engine:
            assert engine.decide_update(VALID).allow
            assert engine.decide_update(varied(update={"round": 9})).codes == ("stale_round",)
    finally:
        server.terminate()
        server.wait(10)
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    decisions = [e for e in entries if e.get("msg") == "Decision Log"]
    assert len(decisions) == 2, log.read_text()[-2000:]
    assert decisions[0]["path"] == "fedsilo/update/decision" and decisions[0]["result"]["allow"] is True
    assert decisions[1]["result"]["reasons"][0].startswith("stale_round: ")
    revisions = {bundle["revision"] for d in decisions for bundle in d["bundles"].values()}
    assert revisions == {PolicyBundle.load(ROOT / "policies").revision}
    assert decisions[0]["labels"]["app"] == "fedsilo"
