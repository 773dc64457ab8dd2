"""Budgets over composed state: a silo's epsilon across jobs is its composed history, well
below the sum of the jobs' epsilons; the update that would cross a job or lifetime ceiling is
named before it is aggregated and before anything is written."""

from __future__ import annotations

import pytest

from fedsilo.privacy import DpSgdEvent, GaussianEvent, Mechanism, epsilon_for
from fedsilo.privacy.ledger import PrivacyLedger

JOB_1 = GaussianEvent(4.0, 1)
JOB_2 = DpSgdEvent(1.0, 0.02, 50)


def _run(ledger: PrivacyLedger, silo: str, job: str, event: Mechanism, rounds: int) -> None:
    for number in range(1, rounds + 1):
        ledger.charge(silo, job, number, event, idempotency_key=f"{silo}/{job}/{number}", delta=1e-5)


def test_the_lifetime_epsilon_composes_the_jobs_rather_than_adding_them(ledger: PrivacyLedger) -> None:
    _run(ledger, "hospital-a", "job-1", JOB_1, 20)
    _run(ledger, "hospital-a", "job-2", JOB_2, 20)
    job_1 = ledger.epsilon_spent("hospital-a", "job-1", delta=1e-5)
    job_2 = ledger.epsilon_spent("hospital-a", "job-2", delta=1e-5)
    lifetime = ledger.epsilon_spent("hospital-a", delta=1e-5)
    assert lifetime == pytest.approx(epsilon_for([JOB_1] * 20 + [JOB_2] * 20, 1e-5))
    assert max(job_1, job_2) < lifetime < job_1 + job_2
    assert ledger.history("hospital-a")[-1].epsilon_lifetime == pytest.approx(lifetime)


def test_every_row_records_the_composed_epsilons_after_it(ledger: PrivacyLedger) -> None:
    _run(ledger, "hospital-a", "job-1", JOB_1, 5)
    _run(ledger, "hospital-b", "job-1", JOB_2, 2)
    _run(ledger, "hospital-a", "job-2", JOB_2, 3)
    for index, charge in enumerate(ledger.history("hospital-a"), start=1):
        earlier = ledger.history("hospital-a")[:index]
        assert charge.epsilon_lifetime == pytest.approx(epsilon_for([c.mechanism for c in earlier], 1e-5))
        in_job = [c.mechanism for c in earlier if c.job == charge.job]
        assert charge.epsilon_job == pytest.approx(epsilon_for(in_job, 1e-5))


def test_the_update_that_would_cross_the_job_ceiling_is_named_before_it_is_aggregated(ledger: PrivacyLedger) -> None:
    ceiling = 2.0
    crossing = None
    for number in range(1, 200):
        check = ledger.would_exceed("hospital-a", "job-1", JOB_2, job_ceiling=ceiling, silo_ceiling=None, delta=1e-5)
        if check.exceeds:
            crossing = number
            break
        ledger.charge("hospital-a", "job-1", number, JOB_2, idempotency_key=f"u{number}", delta=1e-5)
    assert crossing is not None
    # It is exactly the first round whose composed epsilon is above the ceiling...
    assert epsilon_for([JOB_2] * (crossing - 1), 1e-5) <= ceiling < epsilon_for([JOB_2] * crossing, 1e-5)
    # ...it was never charged, and the answer says why, in the policy's words.
    assert len(ledger.history()) == crossing - 1
    assert check.job_exceeded and not check.silo_exceeded
    assert check.reasons[0].startswith("job_epsilon_exceeded: accepting would bring the silo's epsilon in this job to ")
    assert check.projection.job_spent <= ceiling < check.projection.job_if_accepted


def test_a_new_job_is_stopped_by_the_silo_lifetime_ceiling_its_own_ceiling_allows(ledger: PrivacyLedger) -> None:
    _run(ledger, "hospital-a", "job-1", JOB_1, 30)
    spent = ledger.epsilon_spent("hospital-a", delta=1e-5)
    check = ledger.would_exceed(
        "hospital-a", "job-2", GaussianEvent(1.0, 1), job_ceiling=8.0, silo_ceiling=spent + 0.5, delta=1e-5
    )
    assert not check.job_exceeded
    assert check.silo_exceeded
    assert check.reasons == (
        f"silo_epsilon_exceeded: accepting would bring the silo's epsilon to "
        f"{check.projection.lifetime_if_accepted:.4g}, above the silo's own ceiling {spent + 0.5:g}",
    )


def test_asking_writes_nothing_and_silos_are_separate(ledger: PrivacyLedger) -> None:
    _run(ledger, "hospital-a", "job-1", JOB_1, 3)
    projection = ledger.epsilon_if_accepted("hospital-b", "job-1", JOB_1, delta=1e-5)
    assert projection.job_spent == projection.lifetime_spent == 0.0
    assert projection.job_if_accepted == pytest.approx(epsilon_for([JOB_1], 1e-5))
    assert len(ledger.history()) == 3


def test_no_ceiling_never_exceeds(ledger: PrivacyLedger) -> None:
    check = ledger.would_exceed(
        "hospital-a", "job-1", GaussianEvent(0.5, 1), job_ceiling=None, silo_ceiling=None, delta=1e-5
    )
    assert not check.exceeds
    assert check.reasons == ()


def test_the_ledger_answers_with_the_accountant_asked_for(ledger: PrivacyLedger) -> None:
    _run(ledger, "hospital-a", "job-1", JOB_1, 10)
    rdp = ledger.epsilon_spent("hospital-a", delta=1e-5, accountant="rdp")
    pld = ledger.epsilon_spent("hospital-a", delta=1e-5, accountant="pld")
    assert pld == pytest.approx(epsilon_for([JOB_1] * 10, 1e-5, "pld"))
    assert pld < rdp
