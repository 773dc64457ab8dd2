"""When a round closes, the hub signs the audit log's head and takes the hub ledger's signed head;
both go into the round's lineage in the registry and into the status report, outside the files
they head, and each verifies against its file with the hub's key."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedsilo.aggregator import LedgerBook
from fedsilo.api import FederatedJob
from fedsilo.audit import SignedHead, verify_audit_log
from fedsilo.identity import SigningKey
from fedsilo.privacy import GaussianEvent, epsilon_for
from fedsilo.privacy.ledger import PrivacyLedger, verify_ledger
from fedsilo.registry import LocalRegistry
from fedsilo.runner import ReportingObserver

from .conftest import LENGTH, RecordedRounds, running_hub

DELTA = 1e-5
SIGMA = 2.0


def test_a_closed_round_publishes_the_signed_heads_of_the_audit_log_and_the_ledger(tmp_path: Path) -> None:
    hub_key = SigningKey.generate()
    ledger = PrivacyLedger(tmp_path / "hub.sqlite", hub_key)

    def book(job: FederatedJob) -> LedgerBook:
        return LedgerBook(job.spec, ledger, "admission/run")

    privacy = {"mode": "silo", "noiseMultiplier": SIGMA, "delta": DELTA}
    with running_hub(tmp_path, ["a"], book, privacy=privacy) as hub:
        hub.open_round()
        payload = np.full(LENGTH, 1.0, np.float32)
        silo = hub.silos["a"]
        release = GaussianEvent(SIGMA, 1)
        claims = silo.metadata(payload, mechanism=release.to_json(), epsilon_round=epsilon_for([release], DELTA))
        assert silo.submit(claims, payload).accepted
        summary = hub.first_summary()
        audit_key = hub.coordinator._gate.audit._key.public_key  # type: ignore[attr-defined]
    ledger.close()

    assert summary.audit_head is not None and summary.ledger_head is not None
    # The audit head covers the round's decision; the ledger head the round's one charge.
    assert summary.audit_head.seq == 1 and summary.ledger_head.seq == 1
    verify_audit_log(tmp_path / "audit.jsonl", audit_key, published=summary.audit_head)
    assert verify_ledger(tmp_path / "hub.sqlite", hub_key.public_key, published=summary.ledger_head).head.seq == 1

    lineage = LocalRegistry(tmp_path / "registry").show("admission", 1).lineage
    assert lineage.evidence == {
        "audit_head": summary.audit_head.to_json(),
        "ledger_head": summary.ledger_head.to_json(),
    }

    reports = RecordedRounds()
    observer = ReportingObserver(reports)
    observer.round_finished(summary)
    observer.close(None)
    evidence = reports.rounds[0].evidence
    assert evidence is not None and evidence.audit_head is not None
    # What the status shows is a valid --head, field for field.
    assert SignedHead.parse(evidence.audit_head.model_dump_json(by_alias=True)) == summary.audit_head
