"""What a round of record-level DP-SGD costs, computed by the sidecar from facts it can stand behind.

The sidecar hands the trainer the job's noise multiplier, clipping norm and batch size
(``DpSgdPlan``); the trainer trains and reports what it ran (``ReportedDpParams``). The
trainer runs user code, so its report is a claim, not a fact: ``charge_for_round``
combines it with the plan so that every way of misreporting can only raise the charge.
Less noise than planned is charged as reported; more noise than planned is not credited;
a larger record count than the silo declared when it joined is not believed; fewer steps
than the planned epochs need are not believed. A clipping norm above the plan's is
refused outright: noise is calibrated to the clipping norm, and without clipping the
sensitivity is unbounded, so no charge would be honest.

What the sidecar cannot check is whether the trainer ran DP-SGD at all; its update is
whatever the trainer hands over. Record mode therefore trusts the trainer's code to clip
and add noise (as the silo trusts it with its data); silo mode, where the sidecar adds
the noise itself, does not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ._events import DpSgdEvent


class PrivacyViolation(Exception):
    """A trainer's DP report that no honest charge can be computed for; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DpSgdPlan:
    """What the sidecar configured for one silo's round, and the silo's record count declared at join."""

    noise_multiplier: float
    max_grad_norm: float
    batch_size: int
    local_epochs: int
    records: int

    def __post_init__(self) -> None:
        for name in ("noise_multiplier", "max_grad_norm"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, not {value!r}")
        for name in ("batch_size", "local_epochs", "records"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class ReportedDpParams:
    """What a trainer says it ran: the fields of its ``FitResult`` the accountant needs."""

    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    num_samples: int

    @classmethod
    def from_fit_report(cls, report: Mapping[str, Any]) -> ReportedDpParams:
        """Read the DP fields of a trainer's fit report; ``PrivacyViolation`` if one is missing or not a number."""
        return cls(
            noise_multiplier=_real(report, "noise_multiplier"),
            max_grad_norm=_real(report, "max_grad_norm"),
            sample_rate=_real(report, "sample_rate"),
            steps=_count(report, "steps"),
            num_samples=_count(report, "num_samples"),
        )


def _real(report: Mapping[str, Any], name: str) -> float:
    value = report.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PrivacyViolation(f"dp_report_incomplete: {name} is {value!r}, expected a number")
    return float(value)


def _count(report: Mapping[str, Any], name: str) -> int:
    value = report.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PrivacyViolation(f"dp_report_incomplete: {name} is {value!r}, expected an integer")
    return value


def charge_for_round(reported: ReportedDpParams, plan: DpSgdPlan) -> DpSgdEvent:
    """The mechanism to charge for one round: never cheaper than what ``plan`` costs on the silo's records.

    Raise ``PrivacyViolation`` when the report is not a DP-SGD run the plan allows.
    """
    _check_report(reported)
    if reported.max_grad_norm > plan.max_grad_norm:
        raise PrivacyViolation(
            f"clipping_norm_exceeds_configured: the trainer clipped to {reported.max_grad_norm}, above the "
            f"configured {plan.max_grad_norm}; the noise does not cover that sensitivity"
        )
    noise_multiplier = min(reported.noise_multiplier, plan.noise_multiplier)
    # Exact fractions: ceil(epochs * records / batch) must not gain a step from float rounding.
    records = min(reported.num_samples, plan.records)
    sample_rate = min(Fraction(1), max(Fraction(reported.sample_rate), Fraction(plan.batch_size, records)))
    steps = max(reported.steps, math.ceil(plan.local_epochs / sample_rate))
    return DpSgdEvent(noise_multiplier, float(sample_rate), steps)


def _check_report(reported: ReportedDpParams) -> None:
    for name in ("noise_multiplier", "max_grad_norm"):
        value = getattr(reported, name)
        if not (math.isfinite(value) and value > 0):
            raise PrivacyViolation(f"dp_report_invalid: {name} is {value!r}, expected a positive finite number")
    if not (math.isfinite(reported.sample_rate) and 0 < reported.sample_rate <= 1):
        raise PrivacyViolation(f"dp_report_invalid: sample_rate is {reported.sample_rate!r}, expected one in (0, 1]")
    for name in ("steps", "num_samples"):
        value = getattr(reported, name)
        if value < 1:
            raise PrivacyViolation(f"dp_report_invalid: {name} is {value!r}, expected a positive integer")
