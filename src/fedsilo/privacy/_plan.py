"""What a silo's sidecar enforces for one job: the noise it runs with and what each round is charged.

The plan is computed on the silo's side from the job's ``privacy`` section and facts the
silo knows itself (its record count), never from a number the hub or the trainer hands
over. A job with a ``targetEpsilon`` is calibrated here so that all its rounds, charged
the way ``charge_for_round`` charges them, cost at most the target for this silo.

Record mode: the trainer runs Opacus' DP-SGD with Poisson sampling at rate batch/records
(Opacus' loader takes ``ceil(records / batch)`` steps per epoch) and the sidecar charges
what it ran. Silo mode: the sidecar clips the update to the norm cap C and adds Gaussian
noise itself. With masked aggregation only the sum of at least ``minSilos`` updates is
ever revealed, so each silo adds std sigma*C/sqrt(minSilos) (see ``silo_noise_std``);
with plain aggregation the hub sees every update, so each silo adds the whole sigma*C.
Silo mode also weighs every silo's update equally (DP-FedAvg): a sample-weighted sum
would make a silo's sensitivity its record count times C, which the noise does not cover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from fedsilo.api import AggregationMode, FederatedJobSpec, PrivacyMode

from ._accountant import AccountantKind, epsilon_for, resolve_noise_multiplier
from ._charge import DpSgdPlan, ReportedDpParams, charge_for_round
from ._events import GaussianEvent, Mechanism
from ._silo_noise import silo_noise_std


@dataclass(frozen=True)
class SiloPrivacyPlan:
    """One silo's privacy for one job; ``noise_std`` is set in silo mode, ``dp_sgd`` in record mode."""

    mode: PrivacyMode
    noise_multiplier: float
    delta: float
    accountant: AccountantKind
    dp_sgd: DpSgdPlan | None = None
    noise_std: float | None = None

    def fit_dp(self) -> dict[str, float] | None:
        """The ``dp`` part of the trainer's fit configuration (record mode), or None."""
        if self.dp_sgd is None:
            return None
        return {
            "noise_multiplier": self.dp_sgd.noise_multiplier,
            "max_grad_norm": self.dp_sgd.max_grad_norm,
            "delta": self.delta,
        }

    def planned_event(self) -> Mechanism:
        """The least a round can be charged: what an honest run of the plan costs."""
        if self.dp_sgd is None:
            return GaussianEvent(self.noise_multiplier, 1)
        plan = self.dp_sgd
        batches = math.ceil(plan.records / plan.batch_size)
        honest = ReportedDpParams(
            plan.noise_multiplier, plan.max_grad_norm, 1.0 / batches, plan.local_epochs * batches, plan.records
        )
        return charge_for_round(honest, plan)

    def round_event(self, fit_report: dict[str, object]) -> Mechanism:
        """What this round is charged, from the trainer's report (record mode) or the sidecar's own noise.

        ``PrivacyViolation`` when a record-mode report cannot be charged honestly.
        """
        if self.dp_sgd is None:
            return GaussianEvent(self.noise_multiplier, 1)
        return charge_for_round(ReportedDpParams.from_fit_report(fit_report), self.dp_sgd)

    def epsilon_of(self, event: Mechanism) -> float:
        """The epsilon of ``event`` alone at the job's delta: the number the sidecar signs."""
        return epsilon_for([event], self.delta, self.accountant)


def plan_for_silo(spec: FederatedJobSpec, records: int) -> SiloPrivacyPlan | None:
    """The plan of a silo with ``records`` training records; None when the job runs without DP."""
    privacy = spec.privacy
    if privacy.mode is PrivacyMode.NONE:
        return None
    if records < 1:
        raise ValueError("a silo needs at least one training record to plan its privacy")
    if privacy.mode is PrivacyMode.SILO:
        sigma = resolve_noise_multiplier(privacy, 1.0, spec.rounds)
        # The hub sees only the sum in masked and homomorphic mode, so the noise is shared by the quorum.
        hidden = spec.aggregation.mode in (AggregationMode.MASKED, AggregationMode.HOMOMORPHIC)
        quorum = spec.min_silos if hidden else 1
        return SiloPrivacyPlan(
            privacy.mode,
            sigma,
            privacy.delta,
            privacy.accountant,
            noise_std=silo_noise_std(sigma, spec.policy.norm_cap, quorum),
        )
    batch, epochs = spec.training.batch_size, spec.training.local_epochs
    sample_rate = float(min(Fraction(1), Fraction(batch, records)))
    steps_per_round = epochs * math.ceil(records / batch)
    sigma = resolve_noise_multiplier(privacy, sample_rate, spec.rounds * steps_per_round)
    plan = DpSgdPlan(sigma, privacy.max_grad_norm, batch, epochs, records)
    return SiloPrivacyPlan(privacy.mode, sigma, privacy.delta, privacy.accountant, dp_sgd=plan)
