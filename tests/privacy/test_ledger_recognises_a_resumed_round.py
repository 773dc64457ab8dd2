"""A hub resumed after a crash runs its round again: the release already charged for it is recognised, never charged twice.

The silo sends the release it kept again (masked afresh, so under another payload digest);
both ledgers find the round's charge with the same mechanism instead of a second row, and
refuse a different mechanism, and the hub refuses a second update for any other round.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedsilo.aggregator import LedgerBook
from fedsilo.api import FederatedJob
from fedsilo.identity import SigningKey
from fedsilo.policy import Reason, Refusal
from fedsilo.privacy import GaussianEvent, epsilon_for
from fedsilo.privacy.ledger import LedgerConflict, PrivacyLedger
from fedsilo.protocol import UpdateMetadata, mechanism_claim
from fedsilo.sidecar._releases import KeptRelease, ReleaseStore

from ..aggregator.conftest import job_document

SIGMA, DELTA = 2.0, 1e-5
EVENT = GaussianEvent(SIGMA, 1)


def test_a_resumed_charge_with_the_same_mechanism_returns_the_round_s_row(tmp_path: Path) -> None:
    key = SigningKey.generate()
    with PrivacyLedger(tmp_path / "silo.sqlite", key) as ledger:
        first = ledger.charge("a", "job/run", 2, EVENT, idempotency_key="job/run/a/2/sha256:first", delta=DELTA)
        again = ledger.charge(
            "a", "job/run", 2, EVENT, idempotency_key="job/run/a/2/sha256:again", delta=DELTA, resumed=True
        )
        assert again.seq == first.seq and len(ledger.history()) == 1
        with pytest.raises(LedgerConflict, match="already charged"):
            ledger.charge("a", "job/run", 2, EVENT, idempotency_key="job/run/a/2/sha256:third", delta=DELTA)
        with pytest.raises(LedgerConflict, match="already charged"):
            ledger.charge("a", "job/run", 2, GaussianEvent(1.0, 1), idempotency_key="x", delta=DELTA, resumed=True)
        ledger.verify(key=key.public_key)


def _claims(round_number: int, digest: str) -> UpdateMetadata:
    return UpdateMetadata.model_construct(
        round=round_number,
        payload_digest=digest,
        epsilon_round=epsilon_for([EVENT], DELTA),
        mechanism=mechanism_claim(EVENT.to_json()),
    )


def test_the_hub_s_book_takes_the_resumed_round_once_and_refuses_a_second_update_elsewhere(tmp_path: Path) -> None:
    job = FederatedJob.model_validate(
        job_document(["a"], privacy={"mode": "silo", "noiseMultiplier": SIGMA, "delta": DELTA})
    )
    with PrivacyLedger(tmp_path / "hub.sqlite") as ledger:
        crashed = LedgerBook(job.spec, ledger, "job/run")
        for round_number in (1, 2):
            crashed.commit("a", _claims(round_number, f"sha256:{round_number}" + "0" * 63))
        spent = ledger.epsilon_spent("a", "job/run", delta=DELTA)
        resumed = LedgerBook(job.spec, ledger, "job/run", resumed_round=2)
        again = _claims(2, "sha256:" + "f" * 64)
        resumed.check("a", again)
        view = resumed.policy_view("a", again)
        assert view is not None and view.epsilon_spent == view.epsilon_if_accepted == spent
        assert resumed.commit("a", again) == spent
        assert len(ledger.history()) == 2
        with pytest.raises(Refusal) as refused:
            resumed.check("a", _claims(1, "sha256:" + "e" * 64))
        assert refused.value.reason is Reason.ROUND_ALREADY_CHARGED


def test_a_kept_release_is_given_back_only_for_its_round_and_model(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path / "silo.sqlite", "job/run")
    delta = np.linspace(-1, 1, 7, dtype=np.float32)
    store.keep(KeptRelease(3, "sha256:model", delta, 1, 0.5, EVENT, 0.25))
    kept = store.kept(3, "sha256:model")
    assert kept is not None and np.array_equal(kept.delta, delta) and kept.mechanism == EVENT
    assert (kept.weight, kept.l2_norm, kept.epsilon_round) == (1, 0.5, 0.25)
    assert store.kept(4, "sha256:model") is None
    assert store.kept(3, "sha256:other") is None
    store.path.write_bytes(store.path.read_bytes()[:20])
    assert store.kept(3, "sha256:model") is None
