"""The ledger's hash chain: an untouched ledger verifies; an edited, re-hashed, removed or
reformatted row is found and named; truncation is found against an anchored head; and the
table refuses in-place edits outright."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fedsilo.privacy import DpSgdEvent, GaussianEvent
from fedsilo.privacy.ledger import ChainHead, LedgerIntegrityError, PrivacyLedger
from fedsilo.privacy.ledger._chain import GENESIS, row_digest


def _fill(ledger: PrivacyLedger) -> None:
    for number in range(1, 5):
        ledger.charge("hospital-a", "job-1", number, GaussianEvent(2.0, 1), idempotency_key=f"a{number}", delta=1e-5)
        ledger.charge(
            "hospital-b", "job-1", number, DpSgdEvent(1.1, 0.01, 100), idempotency_key=f"b{number}", delta=1e-5
        )


def _tamper(path: Path, *statements: str) -> None:
    """What someone with write access to the file does: drop the guards, then edit."""
    with sqlite3.connect(path) as db:
        db.execute("DROP TRIGGER charges_no_update")
        db.execute("DROP TRIGGER charges_no_delete")
        for statement in statements:
            db.execute(statement)


def test_an_untouched_ledger_verifies_to_its_head(ledger: PrivacyLedger) -> None:
    _fill(ledger)
    head = ledger.verify()
    assert head == ledger.head()
    assert head.seq == 8
    assert ledger.verify(expected_head=head) == head


def test_an_empty_ledger_verifies_to_the_genesis_digest(ledger: PrivacyLedger) -> None:
    assert ledger.verify() == ledger.head() == ChainHead(0, GENESIS)


def test_an_edited_epsilon_is_found(ledger: PrivacyLedger) -> None:
    _fill(ledger)
    _tamper(ledger.path, "UPDATE charges SET epsilon_job = epsilon_job / 2 WHERE seq = 3")
    with pytest.raises(LedgerIntegrityError, match="row 3: was changed") as found:
        ledger.verify()
    assert found.value.seq == 3


def test_an_edited_and_rehashed_row_breaks_the_link_to_the_next(ledger: PrivacyLedger) -> None:
    _fill(ledger)
    _tamper(
        ledger.path,
        'UPDATE charges SET mechanism = \'{"count":1,"kind":"gaussian","noise_multiplier":20.0}\' WHERE seq = 3',
    )
    with sqlite3.connect(ledger.path) as db:
        db.row_factory = sqlite3.Row
        row = dict(db.execute("SELECT * FROM charges WHERE seq = 3").fetchone())
        db.execute("UPDATE charges SET digest = ? WHERE seq = 3", (row_digest(row),))
    with pytest.raises(LedgerIntegrityError, match="row 4: does not follow"):
        ledger.verify()


def test_a_removed_row_is_found(ledger: PrivacyLedger) -> None:
    _fill(ledger)
    _tamper(ledger.path, "DELETE FROM charges WHERE seq = 5")
    with pytest.raises(LedgerIntegrityError, match="row 5: missing"):
        ledger.verify()


def test_a_removed_last_row_is_found_against_the_anchored_head(ledger: PrivacyLedger) -> None:
    _fill(ledger)
    anchored = ledger.head()
    _tamper(ledger.path, "DELETE FROM charges WHERE seq = 8")
    # The chain alone cannot tell a shorter ledger from a truncated one...
    assert ledger.verify().seq == 7
    # ...the head anchored before (in the signed audit log) can.
    with pytest.raises(LedgerIntegrityError, match="row 8: missing: the ledger was truncated"):
        ledger.verify(expected_head=anchored)


def test_a_ledger_that_grew_since_the_anchor_still_verifies_against_it(ledger: PrivacyLedger) -> None:
    _fill(ledger)
    anchored = ledger.head()
    ledger.charge("hospital-a", "job-1", 5, GaussianEvent(2.0, 1), idempotency_key="a5", delta=1e-5)
    assert ledger.verify(expected_head=anchored).seq == 9


def test_a_forged_anchor_is_refused(ledger: PrivacyLedger) -> None:
    _fill(ledger)
    with pytest.raises(LedgerIntegrityError, match="row 4: differs from the anchored head"):
        ledger.verify(expected_head=ChainHead(4, "sha256:" + "1" * 64))


def test_an_equivalent_but_reformatted_mechanism_is_found(ledger: PrivacyLedger) -> None:
    _fill(ledger)
    _tamper(
        ledger.path,
        'UPDATE charges SET mechanism = \'{"kind": "gaussian", "noise_multiplier": 2.0, "count": 1}\' WHERE seq = 1',
    )
    with pytest.raises(LedgerIntegrityError, match="row 1: was changed"):
        ledger.verify()


def test_the_table_refuses_in_place_edits_and_deletes(ledger: PrivacyLedger) -> None:
    _fill(ledger)
    with sqlite3.connect(ledger.path) as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE charges SET epsilon_job = 0 WHERE seq = 1")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM charges WHERE seq = 1")
    assert ledger.verify().seq == 8
