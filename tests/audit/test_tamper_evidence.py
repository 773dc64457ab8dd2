"""`fedsilo audit verify` finds an edited, dropped, inserted or reordered record, a truncated
log and a wrong key, and names the record; an untouched log verifies."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fedsilo.audit import AuditLog, AuditVerificationError, record_hash, verify_audit_log
from fedsilo.identity import SigningKey


def _write_log(path: Path, key: SigningKey, decisions: int = 10) -> None:
    log = AuditLog(path, key, checkpoint_every=4)
    for i in range(decisions):
        log.record_decision(
            job="job", round_number=1 + i // 3, silo=f"silo-{i % 3}", payload_digest=f"sha256:{i:064x}",
            policy_input={"i": i}, allow=i % 4 != 0, reasons=[] if i % 4 else ["norm_cap_exceeded: x"],
            policy_revision="r1", engine="embedded",
        )
    log.close()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _edit(lines: list[str]) -> list[str]:
    record = json.loads(lines[2])
    record["decision"] = "deny" if record["decision"] == "allow" else "allow"
    lines[2] = json.dumps(record, sort_keys=True)
    return lines


def _edit_and_rehash(lines: list[str]) -> list[str]:
    """A careful forger: edits a record and recomputes every later hash; the signed checkpoint catches it."""
    records = [json.loads(line) for line in lines]
    records[1]["reasons"] = ["forged reason"]
    previous = records[0]["hash"]
    for record in records[1:]:
        record["prev_hash"] = previous
        record["hash"] = record_hash(record)
        previous = record["hash"]
    return [json.dumps(r, sort_keys=True) for r in records]


def _insert(lines: list[str]) -> list[str]:
    forged = json.loads(lines[3])
    return [*lines[:4], json.dumps(forged, sort_keys=True), *lines[4:]]


TAMPERING: list[tuple[str, Callable[[list[str]], list[str]], str]] = [
    ("edited", _edit, "edited"),
    ("edited and rehashed", _edit_and_rehash, "signature"),
    ("dropped", lambda lines: lines[:3] + lines[4:], "dropped"),
    ("inserted", _insert, "inserted"),
    ("reordered", lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], "reordered"),
    ("truncated", lambda lines: lines[:7], "truncated"),
]


def test_an_untouched_log_verifies(tmp_path: Path) -> None:
    key = SigningKey.generate()
    _write_log(tmp_path / "audit.jsonl", key)
    report = verify_audit_log(tmp_path / "audit.jsonl", key.public_key)
    assert report.decisions == 10 and report.denied == 3 and report.checkpoints == 3


@pytest.mark.parametrize(("name", "tamper", "kind"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampering_is_detected_and_named(tmp_path: Path, name: str, tamper: Callable[[list[str]], list[str]], kind: str) -> None:
    key = SigningKey.generate()
    path = tmp_path / "audit.jsonl"
    _write_log(path, key)
    path.write_text("\n".join(tamper(_lines(path))) + "\n")
    with pytest.raises(AuditVerificationError) as caught:
        verify_audit_log(path, key.public_key)
    assert caught.value.kind == kind, str(caught.value)


def test_a_wrong_key_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write_log(path, SigningKey.generate())
    with pytest.raises(AuditVerificationError) as caught:
        verify_audit_log(path, SigningKey.generate().public_key)
    assert caught.value.kind == "signature"


def test_the_auditor_command_reports_and_exits_with_a_code(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "audit.jsonl"
    _write_log(path, key)
    ok = subprocess.run(
        [sys.executable, "-m", "fedsilo", "audit", "verify", str(path), "--key", key.public_key.to_base64()],
        capture_output=True, text=True, check=False,
    )
    assert ok.returncode == 0 and ok.stdout.startswith("OK: 13 records (10 decisions, 3 denied")
    path.write_text("\n".join(_lines(path)[:-1]) + "\n")
    bad = subprocess.run(
        [sys.executable, "-m", "fedsilo", "audit", "verify", str(path), "--key", key.public_key.to_base64()],
        capture_output=True, text=True, check=False,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("TAMPERED: truncated")
    shown = subprocess.run(
        [sys.executable, "-m", "fedsilo", "audit", "show", str(path), "--decision", "deny", "--jsonl"],
        capture_output=True, text=True, check=True,
    )
    assert [json.loads(line)["decision"] for line in shown.stdout.splitlines()] == ["deny"] * 3
