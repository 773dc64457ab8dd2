"""The hub charges privacy from what a silo signed, never from a number it is handed: a missing,
mismatched or under-noised mechanism and a false epsilon are refused; the update that would
cross the job's ceiling is identified from the ledger before it is aggregated, and the policy
denies it; an admitted update is charged once and acknowledged when its round closes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedsilo.aggregator import LedgerBook
from fedsilo.api import FederatedJob
from fedsilo.privacy import DpSgdEvent, GaussianEvent, epsilon_for
from fedsilo.privacy.ledger import PrivacyLedger

from .conftest import LENGTH, running_hub

DELTA = 1e-5
SIGMA = 2.0
# One Gaussian release at sigma 2 costs 2.17; two cost 3.19, above the job's ceiling of 3.
CEILING = 3.0


def _payload() -> np.ndarray:
    # Silo-level DP weighs every silo 1: the payload is [update..., 1].
    payload = np.full(LENGTH, 0.1, np.float32)
    payload[-1] = 1
    return payload


def _has(reasons: tuple[str, ...], code: str) -> bool:
    return any(reason.startswith(code) for reason in reasons)


def test_privacy_claims_and_the_budget_decide_admission(tmp_path: Path) -> None:
    ledger = PrivacyLedger(tmp_path / "hub.sqlite")
    # Silo "over" already spent one release in this job (a hub restarted mid-job, say).
    ledger.charge("over", "admission/run", 0, GaussianEvent(SIGMA, 1), idempotency_key="earlier", delta=DELTA)

    def book(job: FederatedJob) -> LedgerBook:
        return LedgerBook(job.spec, ledger, "admission/run")

    names = ["honest", "missing", "liar", "quiet", "wrong-mode", "over"]
    privacy = {"mode": "silo", "noiseMultiplier": SIGMA, "delta": DELTA}
    policy = {"normCap": 5.0, "dataClass": "internal", "maxEpsilon": CEILING}
    with running_hub(tmp_path, names, book, privacy=privacy, policy=policy) as hub:
        hub.open_round()
        cost = epsilon_for([GaussianEvent(SIGMA, 1)], DELTA)
        release = GaussianEvent(SIGMA, 1).to_json()

        def submit(name: str, **claims: object) -> tuple[str, ...]:
            silo = hub.silos[name]
            verdict = silo.submit(silo.metadata(_payload(), **claims), _payload())
            return ("allow",) if verdict.accepted else verdict.reasons

        assert submit("honest", mechanism=release, epsilon_round=cost) == ("allow",)
        assert _has(submit("missing"), "privacy_mechanism_missing")
        lie = submit("liar", mechanism=release, epsilon_round=cost / 10)
        assert _has(lie, "epsilon_claim_mismatch: the update claims epsilon_round")
        quiet = GaussianEvent(SIGMA / 2, 1)
        reasons = submit("quiet", mechanism=quiet.to_json(), epsilon_round=epsilon_for([quiet], DELTA))
        assert _has(reasons, "noise_below_configured")
        sgd = DpSgdEvent(SIGMA, 0.1, 10)
        reasons = submit("wrong-mode", mechanism=sgd.to_json(), epsilon_round=epsilon_for([sgd], DELTA))
        assert _has(reasons, "privacy_mechanism_mismatch")
        reasons = submit("over", mechanism=release, epsilon_round=cost)
        assert _has(reasons, "job_epsilon_exceeded")

        summary = hub.first_summary()
        assert summary.accepted == ("honest",)
        assert summary.silos["honest"].epsilon_spent == cost

    charges = {(c.silo, c.round): c for c in ledger.history()}
    # Only the admitted update was charged, and acknowledged once its round's aggregate was taken.
    assert set(charges) == {("over", 0), ("honest", 1)}
    assert charges[("honest", 1)].acknowledged_at is not None
    assert ledger.epsilon_spent("over", "admission/run", delta=DELTA) == cost
    ledger.close()
