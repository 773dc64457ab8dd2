"""A charge is recorded once: a retried update returns the row already written, a contradicting
charge is refused, and a process killed between charge and acknowledgement (SIGKILL, a real
subprocess) leaves exactly one charge that a retry finds again instead of charging twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fedsilo.privacy import DpSgdEvent, GaussianEvent
from fedsilo.privacy.ledger import LedgerConflict, PrivacyLedger

ROUND_EVENT = GaussianEvent(2.0, 1)

# The hub's side of one round, up to the acknowledgement it never gets to write.
CHARGE_THEN_WAIT = """
import sys
from fedsilo.privacy import GaussianEvent
from fedsilo.privacy.ledger import PrivacyLedger

ledger = PrivacyLedger(sys.argv[1])
ledger.charge("hospital-a", "job-1", 3, GaussianEvent(2.0, 1), idempotency_key="sha256:update-3", delta=1e-5)
print("charged", flush=True)
sys.stdin.readline()
ledger.acknowledge("hospital-a", "job-1", 3)
"""

# Round after round, as fast as it can: a kill lands in the middle of some charge.
CHARGE_ROUNDS = """
import sys
from fedsilo.privacy import GaussianEvent
from fedsilo.privacy.ledger import PrivacyLedger

ledger = PrivacyLedger(sys.argv[1])
for number in range(1, 1000):
    ledger.charge("hospital-a", "job-1", number, GaussianEvent(2.0, 1), idempotency_key=f"update-{number}", delta=1e-5)
    print(number, flush=True)
"""


def _child(script: str, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _kill(child: subprocess.Popen[str]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL


def test_charging_the_same_update_again_returns_the_same_row(ledger: PrivacyLedger) -> None:
    first = ledger.charge("hospital-a", "job-1", 1, ROUND_EVENT, idempotency_key="sha256:u1", delta=1e-5)
    again = ledger.charge("hospital-a", "job-1", 1, ROUND_EVENT, idempotency_key="sha256:u1", delta=1e-5)
    assert again == first
    assert len(ledger.history("hospital-a")) == 1
    assert ledger.find("sha256:u1") == first
    assert ledger.find("sha256:unknown") is None


@pytest.mark.parametrize(
    ("silo", "job", "round_number", "event", "delta"),
    [
        ("hospital-a", "job-1", 1, GaussianEvent(1.0, 1), 1e-5),
        ("hospital-a", "job-1", 2, ROUND_EVENT, 1e-5),
        ("hospital-b", "job-1", 1, ROUND_EVENT, 1e-5),
        ("hospital-a", "job-2", 1, ROUND_EVENT, 1e-5),
        ("hospital-a", "job-1", 1, ROUND_EVENT, 1e-6),
    ],
)
def test_the_same_key_with_other_facts_is_refused(
    ledger: PrivacyLedger, silo: str, job: str, round_number: int, event: GaussianEvent, delta: float
) -> None:
    ledger.charge("hospital-a", "job-1", 1, ROUND_EVENT, idempotency_key="sha256:u1", delta=1e-5)
    with pytest.raises(LedgerConflict, match="was charged as row 1 with other facts"):
        ledger.charge(silo, job, round_number, event, idempotency_key="sha256:u1", delta=delta)
    assert len(ledger.history()) == 1


def test_a_second_update_for_a_charged_round_is_refused(ledger: PrivacyLedger) -> None:
    ledger.charge("hospital-a", "job-1", 1, ROUND_EVENT, idempotency_key="sha256:u1", delta=1e-5)
    with pytest.raises(LedgerConflict, match="already charged to silo 'hospital-a' \\(row 1\\) for a different update"):
        ledger.charge("hospital-a", "job-1", 1, ROUND_EVENT, idempotency_key="sha256:retrained", delta=1e-5)


def test_acknowledging_is_idempotent_and_needs_a_charge(ledger: PrivacyLedger) -> None:
    ledger.charge("hospital-a", "job-1", 1, ROUND_EVENT, idempotency_key="sha256:u1", delta=1e-5)
    assert [c.round for c in ledger.pending()] == [1]
    ledger.acknowledge("hospital-a", "job-1", 1)
    acknowledged_at = ledger.history()[0].acknowledged_at
    ledger.acknowledge("hospital-a", "job-1", 1)
    assert ledger.history()[0].acknowledged_at == acknowledged_at is not None
    assert ledger.pending() == ()
    with pytest.raises(KeyError, match="never charged"):
        ledger.acknowledge("hospital-a", "job-1", 2)


def test_a_kill_between_charge_and_acknowledgement_leaves_one_charge_that_a_retry_finds(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    child = _child(CHARGE_THEN_WAIT, path)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "charged"
    _kill(child)

    with PrivacyLedger(path) as reopened:
        assert reopened.verify().seq == 1
        (charge,) = reopened.history()
        # Unacknowledged, and still counted: the update may have been released.
        assert reopened.pending() == (charge,)
        assert reopened.epsilon_spent("hospital-a", "job-1", delta=1e-5) == charge.epsilon_job > 0
        # The restarted hub retries the round with the same update: no second charge.
        retried = reopened.charge(
            "hospital-a", "job-1", 3, GaussianEvent(2.0, 1), idempotency_key="sha256:update-3", delta=1e-5
        )
        assert retried == charge
        reopened.acknowledge("hospital-a", "job-1", 3)
        assert len(reopened.history()) == 1
        assert reopened.pending() == ()


def test_a_kill_in_the_middle_of_charging_loses_no_committed_charge_and_doubles_none(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    child = _child(CHARGE_ROUNDS, path)
    assert child.stdout is not None
    printed = [child.stdout.readline() for _ in range(25)]
    _kill(child)
    # Everything the child printed before it died: the rounds whose charge had committed.
    committed = int([*printed, *child.stdout.read().splitlines()][-1])

    with PrivacyLedger(path) as reopened:
        rounds = [c.round for c in reopened.history()]
        # Every reported charge is there, at most one more (committed but not yet printed), no gap, no half row.
        assert rounds == list(range(1, len(rounds) + 1))
        assert committed <= len(rounds) <= committed + 1
        reopened.verify()
        written = {c.round: c for c in reopened.history()}
        # The restarted hub retries every round of the job: each stays charged once.
        for number in range(1, len(rounds) + 2):
            charge = reopened.charge(
                "hospital-a", "job-1", number, GaussianEvent(2.0, 1), idempotency_key=f"update-{number}", delta=1e-5
            )
            assert number not in written or charge == written[number]
        assert [c.round for c in reopened.history()] == list(range(1, len(rounds) + 2))
        reopened.verify()


def test_two_connections_writing_at_once_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledgers = [PrivacyLedger(path), PrivacyLedger(path)]

    def charge_rounds(index: int) -> None:
        for number in range(1, 11):
            ledgers[index].charge(
                f"silo-{index}",
                "job-1",
                number,
                DpSgdEvent(1.0, 0.05, 20),
                idempotency_key=f"{index}-{number}",
                delta=1e-5,
            )

    threads = [threading.Thread(target=charge_rounds, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledgers[0].verify().seq == 20
    assert [c.round for c in ledgers[1].history("silo-0")] == list(range(1, 11))
    for ledger in ledgers:
        ledger.close()
