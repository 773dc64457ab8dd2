"""The sidecar's privacy duties: the noise the silo's data gets, and the silo's own epsilon ledger.

The silo, not the hub, is the party whose records are at stake, so its sidecar keeps its
own ledger (SQLite, append-only, hash-chained: ``fedsilo.privacy.ledger``) and refuses to
release an update that would take it above its lifetime ceiling or the job's. A round is
charged *before* the update leaves the silo: once a noisy release is out it cannot be
refunded, so a crash between charge and send leaves an unacknowledged charge that still
counts, and a restarted sidecar finds the round already charged and does not release a
second update for it (the ledger allows one charge per silo, job and round). When the
*hub* was restarted and runs the charged round again from the same model, the guard sends
the release it kept for that round again (``_releases``), which both ledgers recognise as
already charged: the round costs nothing more and the resumed job computes what the
uninterrupted one would have.

On an update's way (``_pipeline``) privacy is the guard's two steps: ``SiloNoise``
before encoding (the charge check, the silo's noise, uniform weights) and
``ChargeLedger`` after it (the charge names the exact payload the hub will see, and the
ledger is acknowledged when the hub takes it). Before training, ``plan_task`` puts the
silo's own DP-SGD settings into the trainer's task and skips training a round the
budget cannot pay for.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedsilo.api import PrivacyMode
from fedsilo.privacy import (
    Mechanism,
    PrivacyViolation,
    SiloPrivacyPlan,
    add_silo_noise,
    mechanism_json,
    noise_generator,
)
from fedsilo.privacy.ledger import BudgetCheck, Charge, LedgerConflict, PrivacyLedger, release_key
from fedsilo.protocol import FloatVector, PolicyVerdict, RoundPlan

from ._pipeline import Next, OutgoingUpdate, UpdateRefused
from ._releases import KeptRelease, ReleaseStore

log = logging.getLogger("fedsilo.sidecar")


class PrivacyWithheld(UpdateRefused):
    """The sidecar will not release this round's update; ``reason`` says why, with a stable code."""

    verdict_prefix = "withheld by sidecar"
    log_phrase = "the sidecar withholds this silo's update"


class PrivacyGuard:
    """One silo's privacy for one job run: its plan, its noise, its ledger and ceilings."""

    def __init__(
        self,
        plan: SiloPrivacyPlan,
        ledger: PrivacyLedger,
        silo: str,
        ledger_job: str,
        *,
        job_ceiling: float | None,
        silo_ceiling: float | None,
    ) -> None:
        self.plan = plan
        self._ledger = ledger
        self._silo = silo
        self._job = ledger_job
        self._job_ceiling = job_ceiling
        self._silo_ceiling = silo_ceiling
        self._releases = ReleaseStore(ledger.path, ledger_job)

    @property
    def uniform_weights(self) -> bool:
        """Silo mode weighs every silo's update 1, so each silo's sensitivity is the norm cap."""
        return self.plan.mode is PrivacyMode.SILO

    def plan_task(self, plan: RoundPlan) -> tuple[dict[str, Any], PrivacyWithheld | None]:
        """The trainer's fit configuration for ``plan``, and why training is skipped (None: train).

        Checked before any training: a round the budget cannot pay for is not run at all. A
        charged round whose release is kept (a resumed hub asks for it again) is not withheld:
        the kept release goes out instead of the new training's.
        """
        if self.resend(plan) is not None:
            return self.fit_config(plan.fit_config), None
        try:
            self.check_budget(plan.round, self.plan.planned_event())
        except PrivacyWithheld as withheld:
            return self.fit_config(plan.fit_config), withheld
        return self.fit_config(plan.fit_config), None

    def fit_config(self, fit_config: Mapping[str, Any]) -> dict[str, Any]:
        """The trainer's fit configuration with the silo's own DP-SGD settings (record mode).

        Whatever ``dp`` the hub sent is replaced: the silo decides how its data is protected.
        """
        return {**fit_config, "dp": self.plan.fit_dp()}

    def check_budget(self, round_number: int, event: Mechanism) -> None:
        """``PrivacyWithheld`` if ``event`` would cross a ceiling or the round is already charged."""
        if self._ledger.charged(self._silo, self._job, round_number) is not None:
            raise PrivacyWithheld(
                f"round_already_charged: round {round_number} was charged before (a restarted sidecar); "
                "a second release would cost privacy again"
            )
        check: BudgetCheck = self._ledger.would_exceed(
            self._silo,
            self._job,
            event,
            job_ceiling=self._job_ceiling,
            silo_ceiling=self._silo_ceiling,
            delta=self.plan.delta,
            accountant=self.plan.accountant,
        )
        if check.exceeds:
            raise PrivacyWithheld("; ".join(check.reasons))

    def resend(self, plan: RoundPlan) -> KeptRelease | None:
        """The release to send again for ``plan``: the round is charged with its mechanism, from this model."""
        charged = self._ledger.charged(self._silo, self._job, plan.round)
        if charged is None:
            return None
        kept = self._releases.kept(plan.round, plan.model_digest)
        if kept is None or mechanism_json(kept.mechanism) != mechanism_json(charged.mechanism):
            return None
        return kept

    def keep(self, update: OutgoingUpdate) -> None:
        """Keep the noisy release durably before it is charged, so a resumed round can send it again."""
        if update.mechanism is None or update.epsilon_round is None:
            raise RuntimeError("keep a release only once its mechanism is known")
        self._releases.keep(
            KeptRelease(
                round=update.plan.round,
                model_digest=update.plan.model_digest,
                delta=update.require_delta(),
                weight=update.weight,
                l2_norm=update.l2_norm,
                mechanism=update.mechanism,
                epsilon_round=update.epsilon_round,
            )
        )

    def noised(self, update: FloatVector, clip_range: float) -> FloatVector:
        """Silo mode: the clipped ``update`` plus this silo's share of the noise, in the fixed-point range."""
        if self.plan.noise_std is None:
            return update
        noisy = add_silo_noise(update, self.plan.noise_std, noise_generator())
        # Clipping after the noise is post-processing: it costs no privacy.
        return np.clip(noisy, -clip_range, clip_range).astype(np.float32)

    def charge(self, round_number: int, event: Mechanism, payload_digest: str, *, resent: bool = False) -> Charge:
        """Record the round's release in the silo's ledger, before it leaves the silo.

        ``resent``: the release kept for a resumed round; its charge is found, not repeated.
        """
        try:
            return self._ledger.charge(
                self._silo,
                self._job,
                round_number,
                event,
                idempotency_key=release_key(self._job, self._silo, round_number, payload_digest),
                delta=self.plan.delta,
                accountant=self.plan.accountant,
                resumed=resent,
            )
        except LedgerConflict as error:
            raise PrivacyWithheld(f"round_already_charged: {error}") from error

    def acknowledge(self, round_number: int) -> None:
        """The hub took the update into its aggregate."""
        self._ledger.acknowledge(self._silo, self._job, round_number)


@dataclass(frozen=True)
class SiloNoise:
    """Step: what the round costs is checked against the ceilings, then the silo's noise goes on.

    In record mode (DP-SGD in the trainer) the cost comes from the trainer's fit report and
    no noise is added here; in silo mode every update weighs 1, so each silo's sensitivity
    is the norm cap the noise is calibrated to.
    """

    guard: PrivacyGuard
    clip_range: float

    def __call__(self, update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
        """Charge-check, noise and weigh the update (or take the kept release of a resumed round)."""
        kept = self.guard.resend(update.plan)
        if kept is not None:
            log.warning("round %d: the hub runs this charged round again; sending the kept release", kept.round)
            update.delta, update.weight, update.l2_norm = kept.delta, kept.weight, kept.l2_norm
            update.mechanism, update.epsilon_round = kept.mechanism, kept.epsilon_round
            update.resent = True
            return call_next(update)
        try:
            event = self.guard.plan.round_event(update.fit_report)
        except PrivacyViolation as violation:
            raise PrivacyWithheld(violation.reason) from violation
        self.guard.check_budget(update.plan.round, event)
        update.delta = self.guard.noised(update.require_delta(), self.clip_range)
        if self.guard.uniform_weights:
            update.weight = 1
        update.mechanism = event
        update.epsilon_round = self.guard.plan.epsilon_of(event)
        self.guard.keep(update)
        return call_next(update)


@dataclass(frozen=True)
class ChargeLedger:
    """Step: the silo's ledger is charged for the exact payload before it leaves, acknowledged once taken."""

    guard: PrivacyGuard

    def __call__(self, update: OutgoingUpdate, call_next: Next) -> PolicyVerdict:
        """Charge, send, and acknowledge an accepted release."""
        if update.mechanism is None:
            raise RuntimeError("no mechanism yet: the noise step must come before the charge step")
        round_number = update.plan.round
        charge = self.guard.charge(
            round_number, update.mechanism, update.require_payload().digest, resent=update.resent
        )
        log.info(
            "round %d: charged epsilon %.4g (job total %.4g)", round_number, update.epsilon_round, charge.epsilon_job
        )
        verdict = call_next(update)
        if verdict.accepted:
            self.guard.acknowledge(round_number)
        return verdict
