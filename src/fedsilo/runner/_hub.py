"""Building a job's hub: the coordinator with its silo keys, policy gate, audit log and signing key.

Both places that run an aggregator build it here, so they cannot drift apart: ``fedsilo
run`` (the local run: embedded Rego engine, files in the run directory) and ``fedsilo
aggregator`` (the pod the operator runs: OPA beside it, files under ``--state-dir``). What
differs between them is passed in (engine, registry, observer, privacy book); everything a
hub keeps on disk follows one layout under one directory:

- ``aggregator-key.pem`` / ``.pub``: the Ed25519 key that signs audit checkpoints and every
  global model the hub serves (sidecars verify models with the ``.pub``). It is reused when
  present, so an aggregator restarted on the same state directory extends its audit chain
  instead of failing on a log signed by a key it no longer has;
- ``audit.jsonl``: every policy decision, hash-chained (see ``fedsilo.audit``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fedsilo.aggregator import Checkpoints, JobCoordinator, PrivacyBook, RoundObserver
from fedsilo.api import FederatedJob, Silo
from fedsilo.audit import AuditLog, AuditVerificationError
from fedsilo.datasets import load_silo_data
from fedsilo.identity import SignatureError, SigningKey, VerifyKey, load_signing_key, save_signing_key
from fedsilo.policy import PolicyEngine, PolicyGate, RetryPolicy
from fedsilo.registry import ModelRegistry
from fedsilo.strategies import make_strategy
from fedsilo.trainer import initial_weights

from ._gate import AUDIT_LOG

log = logging.getLogger("fedsilo.hub")

AGGREGATOR_KEY = "aggregator-key.pem"
AGGREGATOR_PUBLIC_KEY = "aggregator-key.pub"


class HubSetupError(ValueError):
    """The job, its silos or the state directory cannot make a hub; the message names what to fix."""


def registered_silo_keys(job: FederatedJob, silos: Sequence[Silo]) -> dict[str, VerifyKey]:
    """Every silo's registered Ed25519 key, by name: the only keys whose updates the hub will verify.

    Raises:
        HubSetupError: a silo the job names is missing, has no ``spec.identity.publicKey``,
            or has one that is not an Ed25519 public key. A hub that started anyway could only
            ever deny that silo's updates, so it refuses before listening.
    """
    by_name = {silo.metadata.name: silo for silo in silos}
    keys: dict[str, VerifyKey] = {}
    for name in job.spec.silos:
        silo = by_name.get(name)
        if silo is None:
            raise HubSetupError(f"FederatedJob/{job.metadata.name} names silo {name} but no Silo/{name} was given")
        registered = silo.spec.identity.public_key
        if not registered:
            raise HubSetupError(
                f"Silo/{name}: spec.identity.publicKey is empty; the aggregator needs every silo's public key"
            )
        try:
            keys[name] = VerifyKey.from_base64(registered)
        except SignatureError as error:
            raise HubSetupError(
                f"Silo/{name}: spec.identity.publicKey is not an Ed25519 public key: {error}"
            ) from error
    return keys


def aggregator_signing_key(state_dir: Path) -> SigningKey:
    """The hub's audit and model signing key in ``state_dir``: loaded if there, else created (0600); its ``.pub`` beside it."""
    path = state_dir / AGGREGATOR_KEY
    public = state_dir / AGGREGATOR_PUBLIC_KEY
    if path.exists():
        key = load_signing_key(path)
    else:
        key = SigningKey.generate()
        save_signing_key(key, path)
        log.info("created the audit signing key %s (public key %s)", path, key.public_key.fingerprint())
    # Always the loaded key's: the file sidecars and auditors verify with must never be another key's.
    public.write_text(key.public_key.to_base64() + "\n")
    return key


@dataclass(frozen=True)
class Hub:
    """A built hub: run ``coordinator``, then ``close`` to seal the audit log and release the engine."""

    coordinator: JobCoordinator
    gate: PolicyGate
    #: Auditors verify ``audit_log`` with this key (``fedsilo audit verify --key``).
    public_key: VerifyKey
    audit_log: Path

    def close(self) -> None:
        """Seal the audit log with a signed checkpoint, then close the policy engine's connections."""
        try:
            self.gate.audit.close()
        finally:
            self.gate.engine.close()


def build_hub(
    job: FederatedJob,
    silos: Sequence[Silo],
    *,
    state_dir: Path,
    engine: PolicyEngine,
    registry: ModelRegistry,
    observer: RoundObserver | None = None,
    privacy: PrivacyBook | None = None,
    retry: RetryPolicy | None = None,
    silo_keys: Mapping[str, VerifyKey] | None = None,
    checkpoints: Checkpoints | None = None,
) -> Hub:
    """The coordinator of ``job`` and its gate, with the audit log and signing key under ``state_dir``.

    Args:
        job: the FederatedJob to run.
        silos: its Silo objects, each with ``spec.identity.publicKey`` (unless ``silo_keys``).
        state_dir: where the audit log and the audit signing key live (created if absent).
        engine: the policy engine the gate asks (embedded locally, the OPA server in a cluster).
        registry: where each round's global model goes.
        observer: told about rounds and decisions (progress bar, Kubernetes status).
        privacy: the privacy ledger the policy input's ``ledger`` facts come from, and which
            is charged for every admitted update; None until a caller passes one.
        retry: how long the gate retries an unavailable engine before it denies (fail closed).
        silo_keys: the silos' verify keys, if the caller already has them.
        checkpoints: where every closed round is checkpointed (resume with ``coordinator.resume``).

    Raises:
        HubSetupError: a silo without a usable key; the model cannot be built from the
            job's data settings; the state directory cannot be used.
    """
    keys = dict(silo_keys) if silo_keys is not None else registered_silo_keys(job, silos)
    spec = job.spec
    by_name = {silo.metadata.name: silo for silo in silos}
    first = by_name.get(spec.silos[0])
    try:
        # Round 0's model needs only the data's shape and classes, which silo 0's part gives.
        data = load_silo_data(spec, 0, len(spec.silos), first.spec.data.path if first else None)
        weights = initial_weights(spec, data)
    except ValueError as error:  # DataError and FactoryError: the message names the file or factory
        raise HubSetupError(f"cannot build round 0's model: {error}") from error
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        signing_key = aggregator_signing_key(state_dir)
        audit = AuditLog(state_dir / AUDIT_LOG, signing_key)
    # A log signed by another key, or tampered with, must not be extended; nor one another process writes.
    except (OSError, ValueError, AuditVerificationError) as error:
        raise HubSetupError(f"cannot use the state directory {state_dir}: {error}") from error
    gate = PolicyGate(engine, audit, retry=retry)
    coordinator = JobCoordinator(
        job,
        keys,
        weights,
        make_strategy(spec),
        registry,
        gate,
        model_key=signing_key,
        observer=observer,
        privacy=privacy,
        silo_ceilings={s.metadata.name: s.spec.max_epsilon for s in silos},
        checkpoints=checkpoints,
    )
    return Hub(coordinator, gate, signing_key.public_key, audit.path)
