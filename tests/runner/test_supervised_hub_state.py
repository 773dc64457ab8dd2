"""What a restarted local hub relies on is kept in the run directory, and bad state is refused with the fix.

The run's CA and the hub's serving certificate survive the hub process (a restarted hub must
present a certificate the live sidecars trust), their private keys 0600; the hub's port is
a typed field of ``run.json``, and so is the port of its /metrics; ``--max-hub-restarts`` takes a
bounded whole number; the hub process's log lines reach the runner's log under their own names.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import stat
import threading
from pathlib import Path

import pytest

from fedsilo.cli._run import add_restart_option
from fedsilo.runner import RecoveryError, RunOptions, RunState, read_run_state
from fedsilo.runner._recovery import RUN_STATE_FILE, write_run_state
from fedsilo.runner._supervised import CA_DIR, _LogToRunner, _relay_log, run_credentials

STATE = {
    "format": "fedsilo.run/v1",
    "job": "quickstart",
    "run_id": "r1",
    "manifest": "/m.yaml",
    "registry": "/registry",
    "ledgers": "/ledgers",
    "isolate": False,
}


def test_the_run_ca_and_hub_certificate_are_kept_with_private_keys_0600(tmp_path: Path) -> None:
    ca, server = run_credentials(tmp_path)
    for name in ("ca-key.pem", "hub-key.pem"):
        assert stat.S_IMODE((tmp_path / CA_DIR / name).stat().st_mode) == 0o600
    again_ca, again_server = run_credentials(tmp_path)
    assert again_ca.certificate_pem == ca.certificate_pem
    assert again_server.certificate_pem == server.certificate_pem
    assert again_server.private_key_pem == server.private_key_pem
    assert again_server.ca_certificate_pem == ca.certificate_pem


def test_a_damaged_run_ca_is_refused_naming_the_folder(tmp_path: Path) -> None:
    run_credentials(tmp_path)
    (tmp_path / CA_DIR / "ca.pem").write_bytes(b"not a certificate")
    with pytest.raises(ValueError, match=r"/ca does not hold this run's CA and hub certificate"):
        run_credentials(tmp_path)


def test_a_missing_hub_certificate_is_refused_naming_the_folder(tmp_path: Path) -> None:
    run_credentials(tmp_path)
    (tmp_path / CA_DIR / "hub.pem").unlink()
    with pytest.raises(ValueError, match=r"does not hold this run's CA and hub certificate .*hub\.pem"):
        run_credentials(tmp_path)


def test_the_hub_and_metrics_ports_are_kept_in_run_json(tmp_path: Path) -> None:
    write_run_state(tmp_path, RunState.model_validate({**STATE, "hub_port": 40123, "metrics_port": 40124}))
    state = read_run_state(tmp_path)
    assert (state.hub_port, state.metrics_port) == (40123, 40124)


@pytest.mark.parametrize("field", ["hub_port", "metrics_port"])
@pytest.mark.parametrize("port", [0, 65536, "40123", 1.5])
def test_a_bad_port_in_run_json_is_refused_naming_the_field(tmp_path: Path, field: str, port: object) -> None:
    (tmp_path / RUN_STATE_FILE).write_text(json.dumps({**STATE, field: port}))
    with pytest.raises(RecoveryError, match=rf"run\.json is damaged .*{field}"):
        read_run_state(tmp_path)


def test_the_hub_process_log_reaches_the_runner_log_under_its_own_name(caplog: pytest.LogCaptureFixture) -> None:
    runner_end, hub_end = multiprocessing.Pipe(duplex=False)
    hub_log = logging.getLogger("fedsilo.test-hub")
    handler = _LogToRunner(hub_end, threading.Lock())
    hub_log.addHandler(handler)
    hub_log.propagate = False
    try:
        hub_log.warning("round %d opened", 3)
        try:
            raise ValueError("a broken checkpoint")
        except ValueError:
            hub_log.exception("resume failed")
    finally:
        hub_log.removeHandler(handler)
        hub_log.propagate = True
    with caplog.at_level(logging.INFO, logger="fedsilo.test-hub"):
        _relay_log(runner_end.recv())
        _relay_log(runner_end.recv())
    (first, second) = caplog.records
    assert (first.name, first.levelno, first.getMessage()) == ("fedsilo.test-hub", logging.WARNING, "round 3 opened")
    assert second.levelno == logging.ERROR
    assert second.getMessage().startswith("resume failed\nTraceback") and "ValueError: a broken checkpoint" in (
        second.getMessage()
    )


@pytest.mark.parametrize("value", ["-1", "many", "101", "2.5"])
def test_max_hub_restarts_takes_a_bounded_whole_number(value: str) -> None:
    parser = argparse.ArgumentParser()
    add_restart_option(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--max-hub-restarts", value])
    assert parser.parse_args(["--max-hub-restarts", "0"]).max_hub_restarts == 0
    assert parser.parse_args([]).max_hub_restarts == RunOptions.max_hub_restarts


def test_a_bad_max_hub_restarts_names_the_flag_and_its_range(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_restart_option(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--max-hub-restarts", "many"])
    assert "--max-hub-restarts must be a whole number from 0 to 100, not 'many'" in capsys.readouterr().err
