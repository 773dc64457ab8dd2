"""Descriptions of the privacy mechanisms a silo's data goes through, as persisted values.

A mechanism is what the accountant composes and what the ledger stores: the ledger keeps
these events, never epsilons, so any accountant can replay a silo's history. The sidecar
builds ``DpSgdEvent`` from a trainer's report (``charge_for_round``) and ``GaussianEvent``
for silo-level noise; ``PrivacyLedger`` persists them as canonical JSON and reads them back
with ``mechanism_from_json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fedsilo.protocol import canonical_json, strict_json


def _check_noise(noise_multiplier: float) -> None:
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError(f"noise_multiplier must be a positive finite number, not {noise_multiplier!r}")


def _check_count(name: str, value: int) -> None:
    # bool is an int subclass; True steps is a bug upstream, not one step.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class DpSgdEvent:
    """Record-level DP-SGD: ``steps`` Poisson-subsampled Gaussian steps.

    Each step samples every record independently with probability ``sample_rate``, clips
    every sampled record's gradient to the clipping norm and adds Gaussian noise of
    standard deviation ``noise_multiplier`` times that norm to the sum.
    """

    noise_multiplier: float
    sample_rate: float
    steps: int

    def __post_init__(self) -> None:
        _check_noise(self.noise_multiplier)
        if not (math.isfinite(self.sample_rate) and 0 < self.sample_rate <= 1):
            raise ValueError(f"sample_rate must be in (0, 1], not {self.sample_rate!r}")
        _check_count("steps", self.steps)

    def to_json(self) -> dict[str, Any]:
        """The JSON document the ledger stores and the sidecar signs."""
        return {
            "kind": "dp_sgd",
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
        }


@dataclass(frozen=True)
class GaussianEvent:
    """Silo-level DP: ``count`` releases of a sum with sensitivity C and Gaussian noise of std ``noise_multiplier`` * C.

    One round of silo-level DP is one release: the clipped updates of the round are summed
    and the sum carries the noise the silos added (see ``silo_noise_std``).
    """

    noise_multiplier: float
    count: int
    #: What the releases were: a training round's sum, or the histograms of the statistics
    #: phase (``fedsilo.statistics``). The ledger says which; the accountant composes both alike.
    purpose: str = "training"

    def __post_init__(self) -> None:
        _check_noise(self.noise_multiplier)
        _check_count("count", self.count)
        if self.purpose not in PURPOSES:
            raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}, not {self.purpose!r}")

    def to_json(self) -> dict[str, Any]:
        """The JSON document the ledger stores and the sidecar signs (a training release's is unchanged)."""
        document: dict[str, Any] = {"kind": "gaussian", "noise_multiplier": self.noise_multiplier, "count": self.count}
        if self.purpose != "training":
            document["purpose"] = self.purpose
        return document


#: What a Gaussian release may be for.
PURPOSES = ("training", "statistics")


Mechanism = DpSgdEvent | GaussianEvent


def mechanism_json(mechanism: Mechanism) -> bytes:
    """Canonical JSON bytes of ``mechanism``: the same event always gives the same bytes."""
    return canonical_json(mechanism.to_json())


def mechanism_from_json(document: str | bytes | dict[str, Any]) -> Mechanism:
    """The mechanism ``document`` describes; ``ValueError`` on anything else.

    Text is read through ``strict_json`` (a ledger row or a signed claim is untrusted):
    a duplicate key, NaN, a huge integer or deep nesting is refused with ``MessageError``,
    a ``ValueError`` that names the problem.
    """
    parsed = strict_json(document, what="mechanism") if isinstance(document, str | bytes) else document
    if not isinstance(parsed, dict):
        raise ValueError("a mechanism is a JSON object")
    kind = parsed.get("kind")
    fields = {k: v for k, v in parsed.items() if k != "kind"}
    expected = {"dp_sgd": {"noise_multiplier", "sample_rate", "steps"}, "gaussian": {"noise_multiplier", "count"}}
    if kind not in expected:
        raise ValueError(f"unknown mechanism kind {kind!r}; expected dp_sgd or gaussian")
    # A statistics release names its purpose; a training one (the original form) does not.
    allowed = expected[kind] | ({"purpose"} if kind == "gaussian" and "purpose" in fields else set())
    if set(fields) != allowed:
        raise ValueError(f"a {kind} mechanism has exactly the fields {sorted(expected[kind])}, not {sorted(fields)}")
    if "purpose" in fields and fields["purpose"] not in PURPOSES[1:]:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES[1:])}, not {fields['purpose']!r}")
    for name in ("noise_multiplier", "sample_rate"):
        # JSON writes 1.0 as 1.0, but a hand-written document may say 1; both are the same number.
        if name in fields and isinstance(fields[name], int) and not isinstance(fields[name], bool):
            if abs(fields[name]) > 2**53:
                raise ValueError(
                    f"{name} must be a number of sensible size, not a {len(str(fields[name]))}-digit integer"
                )
            fields[name] = float(fields[name])
        if name in fields and not isinstance(fields[name], float):
            raise ValueError(f"{name} must be a number, not {fields[name]!r}")
    if kind == "dp_sgd":
        return DpSgdEvent(**fields)
    return GaussianEvent(**fields)
