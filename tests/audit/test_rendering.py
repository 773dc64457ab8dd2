"""What auditors read: decisions filtered by job, silo and outcome; tables for the terminal;
and the `fedsilo audit verify|show` commands end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from fedsilo.audit import decisions_table, read_decisions, report_table, verify_audit_log
from fedsilo.identity import SigningKey


def _render(table: object) -> str:
    console = Console(width=240, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def test_decisions_are_filtered_by_job_silo_and_outcome(sealed_log: Path) -> None:
    assert len(read_decisions(sealed_log)) == 10
    assert [r["seq"] for r in read_decisions(sealed_log, decision="deny")] == [1, 6, 11]
    assert {r["silo"] for r in read_decisions(sealed_log, silo="silo-1")} == {"silo-1"}
    assert [r["job"] for r in read_decisions(sealed_log, job="other")] == ["other", "other"]
    assert [r["seq"] for r in read_decisions(sealed_log, job="other", decision="allow", silo="silo-0")] == [12]
    assert all(json.dumps(r) for r in read_decisions(sealed_log))


def test_the_table_shows_outcome_and_every_reason(sealed_log: Path) -> None:
    text = _render(decisions_table(read_decisions(sealed_log, decision="deny"), title="denied"))
    assert "denied" in text and text.count("norm_cap_exceeded") == 3 and "allow" not in text


def test_the_report_table_names_the_chain_head_to_anchor(sealed_log: Path, key: SigningKey) -> None:
    report = verify_audit_log(sealed_log, key.public_key)
    text = _render(report_table(report))
    assert report.head_hash in text and key.public_key.fingerprint() in text and "10 (3 denied)" in text


def test_the_auditor_commands_report_and_exit_with_a_code(sealed_log: Path, key: SigningKey) -> None:
    def fedsilo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fedsilo", *args], capture_output=True, text=True, check=False)

    ok = fedsilo("audit", "verify", str(sealed_log), "--key", key.public_key.to_base64())
    assert ok.returncode == 0 and ok.stdout.startswith("OK: 13 records (10 decisions, 3 denied"), ok.stderr
    sealed_log.write_text("".join(line + "\n" for line in sealed_log.read_text().splitlines()[:-1]))
    bad = fedsilo("audit", "verify", str(sealed_log), "--key", key.public_key.to_base64())
    assert bad.returncode == 1 and bad.stderr.startswith("TAMPERED: truncated")
    shown = fedsilo("audit", "show", str(sealed_log), "--decision", "deny", "--jsonl")
    assert [json.loads(line)["decision"] for line in shown.stdout.splitlines()] == ["deny"] * 3
