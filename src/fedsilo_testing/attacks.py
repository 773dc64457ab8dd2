"""Malicious silos for tests and benchmarks: a trainer factory that attacks from inside one silo.

A local run names ``fedsilo_testing.attacks:make_client`` as ``spec.model.factory`` and
describes the attack in the ``FEDSILO_TESTING_ATTACK`` environment variable (an
``AttackPlan`` as JSON), which ``fedsilo run`` passes to every trainer it starts. The
silos the plan names send poisoned weights; every other silo trains the plan's built-in
model honestly. The attacks act where a partner's own code runs (its trainer), so the
partner's sidecar still clips and signs what it is handed: a test that wants to model a
modified sidecar raises ``policy.normCap`` and ``aggregation.clipRange`` out of the way.

Why a factory and an environment variable, and not a manifest field: a manifest must not
be able to say "this silo lies". Nothing in the API names an attack; this module is not
part of the fedsilo distribution (``pyproject.toml`` ships ``fedsilo`` only), so a
cluster trainer image cannot import it and a cluster job naming it fails at its first
trainer with ``FactoryError`` naming the factory; and the operator passes no such
variable to the pods it creates.

The attacks (``local - global`` is the honest update ``u`` a silo computed):

- ``sign_flip``: sends ``-scale * u``;
- ``scaled_boost``: sends ``scale * u`` (model replacement when ``scale`` is the silo count);
- ``gaussian``: sends ``N(0, sigma^2)`` noise in place of ``u``;
- ``label_flip``: trains honestly on labels ``c - 1 - y``;
- ``alie`` ("A Little Is Enough", Baruch et al., NeurIPS 2019): sends ``mu - z * sd``, the
  coordinate-wise mean minus ``z`` standard deviations of the honest updates, with ``z``
  from the paper's formula unless given. The attacker needs the honest updates' statistics:
  in this fixture it computes them from a colluding view, training a copy of the model on
  every silo's records (a local run's data are public splits any process can load). A real
  attacker estimates them from its own and its accomplices' data; this is the upper bound.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from enum import StrEnum
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from fedsilo.api import BuiltinModel, FederatedJobSpec, ModelSpec
from fedsilo.datasets import SiloData, load_silo_data
from fedsilo.protocol import Weights
from fedsilo.trainer import EvaluateConfig, EvaluateResult, FitConfig, FitResult, TrainerClient, build_client

#: The environment variable holding the ``AttackPlan`` JSON.
ATTACK_ENV = "FEDSILO_TESTING_ATTACK"
#: The factory a manifest names to run under an attack plan.
FACTORY = "fedsilo_testing.attacks:make_client"


class Attack(StrEnum):
    """What a malicious silo does."""

    NONE = "none"
    SIGN_FLIP = "sign_flip"
    SCALED_BOOST = "scaled_boost"
    GAUSSIAN = "gaussian"
    LABEL_FLIP = "label_flip"
    ALIE = "alie"


class AttackPlan(BaseModel):
    """Which silos attack, how, and the honest model every silo trains."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attack: Attack = Attack.NONE
    attackers: tuple[str, ...] = Field(default=(), description="Names of the malicious silos.")
    model: BuiltinModel = Field(default=BuiltinModel.LOGISTIC_REGRESSION, description="The honest model.")
    scale: float = Field(default=10.0, gt=0.0, le=1e6, description="sign_flip and scaled_boost factor.")
    sigma: float = Field(default=1.0, gt=0.0, le=1e6, description="gaussian: the noise's standard deviation.")
    z: float | None = Field(default=None, ge=0.0, le=100.0, description="alie: standard deviations; default: paper's.")

    def to_env(self) -> dict[str, str]:
        """The environment entry a local run's trainers read this plan from."""
        return {ATTACK_ENV: self.model_dump_json()}

    @classmethod
    def from_env(cls) -> AttackPlan:
        """The plan in ``FEDSILO_TESTING_ATTACK``; no attack when it is unset."""
        text = os.environ.get(ATTACK_ENV)
        return cls() if text is None else cls.model_validate_json(text)


def alie_z(silos: int, attackers: int) -> float:
    """Baruch et al.'s z: ``s = floor(n/2 + 1) - f`` silos must be swayed, ``z = Phi^-1((n - s) / n)``."""
    needed = math.floor(silos / 2 + 1) - attackers
    return NormalDist().inv_cdf((silos - needed) / silos)


Update = dict[str, npt.NDArray[np.float64]]


def _delta(local: Weights, base: Weights) -> Update:
    return {k: (local[k].astype(np.float64) - base[k].astype(np.float64)) for k in base}


def _moved(base: Weights, step: Update) -> Weights:
    return {k: (base[k].astype(np.float64) + step[k]).astype(np.float32) for k in base}


class AttackingClient:
    """A ``TrainerClient`` whose fitted weights are ``global + attack(local - global)``."""

    def __init__(self, plan: AttackPlan, spec: FederatedJobSpec, data: SiloData, honest_spec: FederatedJobSpec) -> None:
        self.plan = plan
        self._spec = honest_spec
        self._data = data
        self._silos = len(spec.silos)
        self._inner = build_client(honest_spec, data)
        self._global: Weights | None = None
        self._sent: Weights | None = None

    def get_weights(self) -> Weights:
        """The poisoned weights after ``fit``; otherwise the honest model's."""
        return self._sent if self._sent is not None else self._inner.get_weights()

    def set_weights(self, weights: Weights) -> None:
        """Take the global model (what the attack is relative to)."""
        self._global = {k: v.copy() for k, v in weights.items()}
        self._sent = None
        self._inner.set_weights(weights)

    def fit(self, config: FitConfig) -> FitResult:
        """Train honestly, then replace the update by the attack's."""
        result = self._inner.fit(config)
        base = self._global if self._global is not None else self._inner.get_weights()
        update = _delta(self._inner.get_weights(), base)
        if self.plan.attack is Attack.ALIE:
            poisoned = self._alie(base, config)
        else:
            poisoned = poison(self.plan, update, (self._spec.seed, config.round, self._data.silo_index or 0))
        self._sent = _moved(base, poisoned)
        return result

    def evaluate(self, config: EvaluateConfig) -> EvaluateResult:
        """The honest evaluation of the global model on this silo's test records."""
        return self._inner.evaluate(config)

    def _alie(self, base: Weights, config: FitConfig) -> Update:
        """``mu - z * sd`` of every silo's honest update from ``base`` (the colluding view)."""
        updates = []
        for index in range(self._silos):
            client = build_client(self._spec, load_silo_data(self._spec, index, self._silos))
            client.set_weights(base)
            client.fit(config)
            updates.append(_delta(client.get_weights(), base))
        return {k: alie_update([u[k] for u in updates], self.plan, self._silos) for k in base}


def poison(plan: AttackPlan, update: Update, noise_seed: tuple[int, int, int]) -> Update:
    """What an attacker sends in place of its honest ``update`` (``local - global``), for the update attacks.

    ``noise_seed`` (job seed, round, silo index) seeds the gaussian attack's noise. Label
    flipping poisons the data, not the update, so its update passes unchanged.

    Raises:
        ValueError: the plan's attack is ``alie``, which needs the honest updates (``alie_update``).
    """
    if plan.attack is Attack.SIGN_FLIP:
        return {k: -plan.scale * v for k, v in update.items()}
    if plan.attack is Attack.SCALED_BOOST:
        return {k: plan.scale * v for k, v in update.items()}
    if plan.attack is Attack.GAUSSIAN:
        rng = np.random.default_rng(list(noise_seed))
        return {k: rng.normal(0.0, plan.sigma, v.shape) for k, v in update.items()}
    if plan.attack is Attack.ALIE:
        raise ValueError("alie needs the honest updates' statistics: call alie_update")
    return update


def alie_update(honest: list[npt.NDArray[np.float64]], plan: AttackPlan, silos: int) -> npt.NDArray[np.float64]:
    """``mu - z * sd`` of the ``honest`` updates, coordinate-wise, with ``plan``'s z (or the paper's for ``silos``)."""
    z = plan.z if plan.z is not None else alie_z(silos, len(plan.attackers))
    stacked = np.asarray(honest, dtype=np.float64)
    sent: npt.NDArray[np.float64] = stacked.mean(axis=0) - z * stacked.std(axis=0)
    return sent


def flip_labels(data: SiloData) -> SiloData:
    """``data`` with every training label ``y`` replaced by ``classes - 1 - y`` (test labels stay true)."""
    return replace(data, train_y=(data.num_classes - 1 - data.train_y).astype(np.int64))


def make_client(spec: FederatedJobSpec, data: SiloData) -> TrainerClient:
    """The trainer factory: the plan's built-in model, attacking when this silo is a named attacker.

    Raises:
        ValueError: the plan names a silo the job does not have (a typo would silently run no attack).
    """
    plan = AttackPlan.from_env()
    unknown = sorted(set(plan.attackers) - set(spec.silos))
    if unknown:
        raise ValueError(f"{ATTACK_ENV} names attackers {unknown} that the job does not list in spec.silos")
    honest = spec.model_copy(update={"model": ModelSpec(builtin=plan.model, hidden_sizes=spec.model.hidden_sizes)})
    name = spec.silos[data.silo_index] if data.silo_index is not None else None
    if name not in plan.attackers or plan.attack is Attack.NONE:
        return build_client(honest, data)
    if plan.attack is Attack.LABEL_FLIP:
        return build_client(honest, flip_labels(data))
    return AttackingClient(plan, spec, data, honest)
