"""The sidecar's privacy duties: the noise the silo's data gets, and the silo's own epsilon ledger.

The silo, not the hub, is the party whose records are at stake, so its sidecar keeps its
own ledger (SQLite, append-only, hash-chained: ``fedsilo.privacy.ledger``) and refuses to
release an update that would take it above its lifetime ceiling or the job's. A round is
charged *before* the update leaves the silo: once a noisy release is out it cannot be
refunded, so a crash between charge and send leaves an unacknowledged charge that still
counts, and a restarted sidecar finds the round already charged and does not release a
second update for it (the ledger allows one charge per silo, job and round).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedsilo.api import PrivacyMode
from fedsilo.privacy import Mechanism, SiloPrivacyPlan, add_silo_noise, noise_generator
from fedsilo.privacy.ledger import BudgetCheck, Charge, LedgerConflict, PrivacyLedger, release_key
from fedsilo.protocol import FloatVector

log = logging.getLogger("fedsilo.sidecar")


class PrivacyWithheld(Exception):
    """The sidecar will not release this round's update; ``reason`` says why, with a stable code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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

    @property
    def uniform_weights(self) -> bool:
        """Silo mode weighs every silo's update 1, so each silo's sensitivity is the norm cap."""
        return self.plan.mode is PrivacyMode.SILO

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

    def noised(self, update: FloatVector, clip_range: float) -> FloatVector:
        """Silo mode: the clipped ``update`` plus this silo's share of the noise, in the fixed-point range."""
        if self.plan.noise_std is None:
            return update
        noisy = add_silo_noise(update, self.plan.noise_std, noise_generator())
        # Clipping after the noise is post-processing: it costs no privacy.
        return np.clip(noisy, -clip_range, clip_range).astype(np.float32)

    def charge(self, round_number: int, event: Mechanism, payload_digest: str) -> Charge:
        """Record the round's release in the silo's ledger, before it leaves the silo."""
        try:
            return self._ledger.charge(
                self._silo,
                self._job,
                round_number,
                event,
                idempotency_key=release_key(self._job, self._silo, round_number, payload_digest),
                delta=self.plan.delta,
                accountant=self.plan.accountant,
            )
        except LedgerConflict as error:
            raise PrivacyWithheld(f"round_already_charged: {error}") from error

    def acknowledge(self, round_number: int) -> None:
        """The hub took the update into its aggregate."""
        self._ledger.acknowledge(self._silo, self._job, round_number)
