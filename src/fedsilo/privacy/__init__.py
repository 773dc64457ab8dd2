"""Differential privacy: mechanisms, a real accountant, silo-level noise, and what a round costs.

``Accountant`` (Google's dp_accounting, RDP or PLD) composes the mechanisms a silo's data
went through; ``epsilon_for`` and ``calibrate_noise`` are its everyday uses. The sidecar
turns a trainer's DP report into the mechanism it charges (``charge_for_round``), or adds
silo-level noise itself (``silo_noise_std``, ``add_silo_noise``); ``plan_for_silo`` says which,
with how much noise, from the job and the silo's own record count. Two subpackages keep
heavy or privileged imports where they belong: ``fedsilo.privacy.dpsgd`` (torch and
Opacus, for the trainer) and ``fedsilo.privacy.ledger`` (the hub's persisted, hash-chained
epsilon ledger). This package itself imports neither torch nor any key material.
"""

from ._accountant import Accountant as Accountant
from ._accountant import AccountantKind as AccountantKind
from ._accountant import calibrate_noise as calibrate_noise
from ._accountant import epsilon_for as epsilon_for
from ._accountant import resolve_noise_multiplier as resolve_noise_multiplier
from ._charge import DpSgdPlan as DpSgdPlan
from ._charge import PrivacyViolation as PrivacyViolation
from ._charge import ReportedDpParams as ReportedDpParams
from ._charge import charge_for_round as charge_for_round
from ._events import DpSgdEvent as DpSgdEvent
from ._events import GaussianEvent as GaussianEvent
from ._events import Mechanism as Mechanism
from ._events import mechanism_from_json as mechanism_from_json
from ._events import mechanism_json as mechanism_json
from ._plan import SiloPrivacyPlan as SiloPrivacyPlan
from ._plan import plan_for_silo as plan_for_silo
from ._silo_noise import add_silo_noise as add_silo_noise
from ._silo_noise import noise_generator as noise_generator
from ._silo_noise import silo_noise_std as silo_noise_std

__all__ = [
    "Accountant",
    "AccountantKind",
    "DpSgdEvent",
    "DpSgdPlan",
    "GaussianEvent",
    "Mechanism",
    "PrivacyViolation",
    "ReportedDpParams",
    "SiloPrivacyPlan",
    "add_silo_noise",
    "calibrate_noise",
    "charge_for_round",
    "epsilon_for",
    "mechanism_from_json",
    "mechanism_json",
    "noise_generator",
    "plan_for_silo",
    "resolve_noise_multiplier",
    "silo_noise_std",
]
