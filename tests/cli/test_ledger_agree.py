"""``fedsilo ledger agree``: the hub's ledger and a silo's agree on the silo's charges, or the command names the rounds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fedsilo.privacy import GaussianEvent
from fedsilo.privacy.ledger import PrivacyLedger, release_key
from tests.conftest import ROOT

DELTA = 1e-5


def _fedsilo(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "fedsilo", "ledger", "agree", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)


def _charge(path: Path, round_number: int, sigma: float) -> None:
    with PrivacyLedger(path) as ledger:
        key = release_key("job/run", "bank-a", round_number, "statistics")
        ledger.charge("bank-a", "job/run", round_number, GaussianEvent(sigma, 2), idempotency_key=key, delta=DELTA)


def test_agreeing_ledgers_exit_0_and_rounds_charged_only_by_the_silo_are_listed(tmp_path: Path) -> None:
    hub, own = tmp_path / "hub.sqlite", tmp_path / "bank-a.sqlite"
    for path in (hub, own):
        _charge(path, 0, 3.0)
    _charge(own, 1, 3.0)
    agreed = _fedsilo(str(own), "--silo", "bank-a", "--hub", str(hub))
    assert agreed.returncode == 0, agreed.stderr
    assert "agree" in agreed.stdout and "charged by the silo only (sent, never admitted): job/run#1" in agreed.stdout


def test_a_round_charged_with_other_noise_or_only_by_the_hub_exits_1_naming_it(tmp_path: Path) -> None:
    hub, own = tmp_path / "hub.sqlite", tmp_path / "bank-a.sqlite"
    _charge(hub, 0, 3.0)
    _charge(own, 0, 2.0)
    _charge(hub, 1, 3.0)
    disagreed = _fedsilo(str(own), "--silo", "bank-a", "--hub", str(hub))
    assert disagreed.returncode == 1
    assert "rounds that differ: job/run#0" in disagreed.stderr
    assert "rounds charged by the hub only: job/run#1" in disagreed.stderr


def test_a_missing_ledger_exits_2_naming_the_file(tmp_path: Path) -> None:
    missing = _fedsilo(str(tmp_path / "nowhere.sqlite"), "--silo", "bank-a", "--hub", str(tmp_path / "hub.sqlite"))
    assert missing.returncode == 2 and "no ledger at" in missing.stderr
