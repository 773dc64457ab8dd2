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
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fedsilo.aggregator import Checkpoints, JobCoordinator, PrivacyBook, RoundObserver, StandingSource
from fedsilo.api import FederatedJob, Silo
from fedsilo.audit import AuditLog, AuditVerificationError
from fedsilo.datasets import FittedPreprocessing, load_silo_data
from fedsilo.identity import SignatureError, SigningKey, VerifyKey, load_signing_key, save_signing_key
from fedsilo.launch import AGGREGATOR_KEY, AGGREGATOR_PUBLIC_KEY
from fedsilo.policy import PolicyEngine, PolicyGate, RetryPolicy
from fedsilo.registry import ModelRegistry
from fedsilo.strategies import make_strategy

from ._gate import AUDIT_LOG

log = logging.getLogger("fedsilo.hub")


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
    # Rewritten only when it differs, and renamed into place: the runner and its hub process both call
    # this while the silos' sidecars start and read it, and a truncated file read meanwhile is no key.
    text = key.public_key.to_base64() + "\n"
    if not public.is_file() or public.read_text() != text:
        partial = public.with_name(f"{public.name}.{os.getpid()}.partial")
        partial.write_text(text)
        partial.replace(public)
    return key


def adopt_published_key(published: Path, state_dir: Path) -> None:
    """Make the key the operator published (``published``, from its Secret) the hub's key in ``state_dir``.

    In a cluster the operator creates the job's signing key, so that it can publish the
    public half to the sidecars before the aggregator runs; the aggregator signs with it.

    Raises:
        HubSetupError: the key cannot be read, or the state already holds another key (models
            and audit records signed by it would no longer verify under the published one).
    """
    try:
        # Parsed, not load_signing_key'd: a Secret's files are group-readable by the pod's fsGroup.
        key = SigningKey.from_pem(published.read_bytes())
        path = state_dir / AGGREGATOR_KEY
        if not path.exists():
            state_dir.mkdir(parents=True, exist_ok=True)
            save_signing_key(key, path)
            return
        held = load_signing_key(path)
    except (OSError, SignatureError, ValueError) as error:
        raise HubSetupError(f"cannot use the published signing key {published}: {error}") from error
    if held.public_key.to_base64() != key.public_key.to_base64():
        raise HubSetupError(
            f"{path} holds key {held.public_key.fingerprint()}, not the published {key.public_key.fingerprint()} "
            "that the sidecars verify models with; give the job a new state volume or the Secret its key"
        )


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
    preprocessing: FittedPreprocessing | None = None,
    standing: StandingSource | None = None,
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
        preprocessing: the job's fitted preprocessing (its statistics phase): round 0's model
            takes its input width, and every model's lineage names its digest.
        standing: asked at every round boundary for the silos' suspensions and rotated keys
            (``manifest_standing``); None: the standing of the start holds for the whole job.
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
        data = load_silo_data(spec, 0, len(spec.silos), first.spec.data.path if first else None, preprocessing)
        # Imported here: the model needs PyTorch, which only the trainer image (where the
        # cluster's aggregator runs, beside the users' model factories) carries; the
        # operator and sidecar import this package without it.
        from fedsilo.trainer import initial_weights

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
        preprocessing_digest=preprocessing.digest() if preprocessing is not None else None,
        standing=standing,
        checkpoints=checkpoints,
    )
    return Hub(coordinator, gate, signing_key.public_key, audit.path)
