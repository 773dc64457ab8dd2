"""Operations on a run that lose nothing: what a run directory must hold to resume, roll back or forget a silo.

``fedsilo run`` writes ``run.json`` (:class:`RunState`) into its run directory so that
``fedsilo run --resume RUN_DIR`` needs nothing else: the manifest, the registry, the ledgers
and the run's ledger name come from it. The hub's checkpoints (``fedsilo.aggregator``,
``checkpoints/round-NNNNN.*``) say where a resumed run goes on.

:func:`rollback` (``fedsilo models rollback``) and :func:`unlearn` (``fedsilo unlearn``) pick
an older checkpoint, record the decision in the audit log (an ``operation`` record, signed
before anything changes), move the later checkpoints and registry models aside into a
``discarded/<time>`` folder (nothing is deleted: auditors can still read them), and write a
:class:`RecoveryReport` naming every discarded round with the updates it had taken. The next
``--resume`` retrains from the kept checkpoint; after ``unlearn`` without the forgotten silo.

The newest checkpoint unlearning may keep is proved by the lineage, not assumed: every kept
round's sealed registry record is verified with the hub's key and must name neither the
silo among its participants nor one of its updates.

Differential privacy: a discarded round was released and charged, and both ledgers let a
round be charged once per run, so retraining rounds of a DP job would be second releases.
Rolling back or unlearning a DP job is refused until the ledgers can name such reruns.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from fedsilo.aggregator import CHECKPOINT_DIR, Checkpoint, CheckpointError, Checkpoints
from fedsilo.api import Manifest, PrivacyMode, load_manifest
from fedsilo.audit import AuditLog, AuditVerificationError, SignedHead
from fedsilo.identity import load_signing_key
from fedsilo.launch import AGGREGATOR_KEY, OUTCOME_FILE
from fedsilo.policy import EmbeddedRegoEngine, JobPolicyInput
from fedsilo.protocol import MessageError, StrictMessage
from fedsilo.registry import LocalRegistry, ModelVerificationError, RegistryError, verify_model

from ._gate import AUDIT_LOG
from ._hub import Hub

RUN_STATE_FILE = "run.json"
REPORTS_DIR = "recovery"
DISCARDED_DIR = "discarded"

_Name = Annotated[str, Field(min_length=1, max_length=253)]


class RecoveryError(ValueError):
    """A run directory, round or silo that cannot be resumed, rolled back or forgotten; the message says the fix."""


class RunState(StrictMessage):
    """What ``fedsilo run`` leaves in its run directory so the run can be resumed with nothing but the folder."""

    format: Literal["fedsilo.run/v1"]
    job: _Name
    #: Names this run in both ledgers (``run_name``): a resumed run charges under the same name.
    run_id: Annotated[str, Field(min_length=1, max_length=128)]
    manifest: Annotated[str, Field(min_length=1, max_length=4096)]
    registry: Annotated[str, Field(min_length=1, max_length=4096)]
    ledgers: Annotated[str, Field(min_length=1, max_length=4096)]
    isolate: bool
    #: Silos ``fedsilo unlearn`` told the run to forget: a resumed run starts none of them.
    excluded: tuple[_Name, ...] = ()
    #: The port the hub listens on (on loopback): a hub the runner restarts after it died listens
    #: there again, with the same certificate, so the silos' sidecars redial it and go on.
    hub_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    #: The port the hub serves /metrics on, when the run serves it: a restarted hub (and a
    #: resumed run asked for ``--metrics-port 0``) serves it there again, where the scraper looks.
    metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = None

    def load_manifest(self) -> Manifest:
        """The run's manifest, without the silos it was told to forget."""
        return without_silos(load_manifest(self.manifest), self.excluded)


def without_silos(manifest: Manifest, excluded: tuple[str, ...]) -> Manifest:
    """``manifest`` with ``excluded`` removed from the job's silos; ``RecoveryError`` if too few would remain."""
    if not excluded:
        return manifest
    job = manifest.job
    remaining = [name for name in job.spec.silos if name not in excluded]
    if len(remaining) < job.spec.min_silos:
        raise RecoveryError(
            f"without {', '.join(excluded)} only {len(remaining)} silos remain, below the job's minSilos "
            f"{job.spec.min_silos}: the job cannot go on without them"
        )
    spec = job.spec.model_copy(update={"silos": remaining})
    return Manifest(
        job.model_copy(update={"spec": spec}),
        tuple(silo for silo in manifest.silos if silo.metadata.name not in excluded),
    )


def write_run_state(run_dir: Path, state: RunState) -> None:
    """Write ``run.json`` into ``run_dir``."""
    (run_dir / RUN_STATE_FILE).write_bytes(state.canonical_bytes() + b"\n")


def read_run_state(run_dir: Path) -> RunState:
    """The state ``fedsilo run`` left in ``run_dir``; ``RecoveryError`` naming the file and the fix."""
    if not run_dir.is_dir():
        raise RecoveryError(f"{run_dir} is not a folder: give the run directory 'fedsilo run' printed")
    path = run_dir / RUN_STATE_FILE
    try:
        return RunState.parse(path.read_bytes())
    except FileNotFoundError:
        raise RecoveryError(
            f"{path} is missing: {run_dir} is not a run directory of 'fedsilo run' (or one made before runs could "
            "be resumed); start the job again with 'fedsilo run MANIFEST'"
        ) from None
    except OSError as error:
        raise RecoveryError(f"{path} cannot be read: {error}") from None
    except MessageError as error:
        raise RecoveryError(f"{path} is damaged ({error}); restore it or start the job again") from None


def latest_checkpoint(checkpoints: Checkpoints) -> Checkpoint | None:
    """The checkpoint a restarted hub resumes from (None before any); ``RecoveryError`` if it does not hold."""
    try:
        return checkpoints.latest()
    except CheckpointError as error:
        raise RecoveryError(str(error)) from None


def resume_hub(hub: Hub, checkpoint: Checkpoint | None, reason: str) -> None:
    """Put ``hub`` on ``checkpoint`` (if any) and record the resume in its audit log, before any round opens.

    The audit log must still hold the head the checkpoint's round published: a log cut back
    since is refused, not extended. The ``resume`` record names the checkpoint, so the chain
    reads on without a gap from the crashed attempt's last decision to the resumed ones.

    Raises:
        RecoveryError: the checkpoint is another job's, does not fit the model, or the audit
            log no longer holds its head.
    """
    job = hub.coordinator.job.metadata.name
    round_number = checkpoint.round if checkpoint is not None else 0
    details: dict[str, object] = {"checkpoint": str(checkpoint.path) if checkpoint is not None else None}
    if checkpoint is not None:
        rounds = checkpoint.document.rounds
        head = rounds[-1].audit_head if rounds else None
        try:
            if head is not None:
                hub.gate.audit.require_head(head)
            hub.coordinator.resume(checkpoint)
        except (ValueError, AuditVerificationError) as error:
            raise RecoveryError(f"cannot resume from {checkpoint.path}: {error}") from None
        details["model_digest"] = checkpoint.document.model_digest
    hub.gate.audit.record_operation(
        job=job, operation="resume", round_number=round_number, reason=reason, details=details
    )


class DiscardedRound(StrictMessage):
    """A round whose model a rollback or unlearning discarded, and the updates it had taken."""

    round: Annotated[int, Field(ge=1)]
    participants: tuple[_Name, ...]
    update_digests: dict[_Name, str]
    model_digest: str


class KeptRound(StrictMessage):
    """A round the kept checkpoint builds on, as its sealed lineage records it (the proof of unlearning)."""

    round: Annotated[int, Field(ge=1)]
    participants: tuple[_Name, ...]
    model_digest: str


class RecoveryReport(StrictMessage):
    """What ``fedsilo models rollback`` or ``fedsilo unlearn`` decided, as written beside the run."""

    format: Literal["fedsilo.recovery/v1"]
    operation: Literal["rollback", "unlearn"]
    job: _Name
    reason: Annotated[str, Field(min_length=1, max_length=2048)]
    #: The checkpoint the run goes on from, and the newest one before the operation.
    to_round: Annotated[int, Field(ge=0)]
    from_round: Annotated[int, Field(ge=0)]
    forgotten: tuple[_Name, ...]
    discarded: tuple[DiscardedRound, ...]
    kept: tuple[KeptRound, ...]
    audit_head: SignedHead
    moved_to: tuple[str, ...]
    decided_at: str


@dataclass(frozen=True)
class _Run:
    """A hub's state opened for an operation: its folder, checkpoints and registry (and ``run.json`` locally)."""

    run_dir: Path
    job: str
    checkpoints: Checkpoints
    registry: LocalRegistry
    state: RunState | None

    @classmethod
    def open(cls, run_dir: Path) -> _Run:
        """A local run's directory, as ``fedsilo run`` left it."""
        state = read_run_state(run_dir)
        checkpoints = Checkpoints(run_dir, ledger_run=state.run_id, excluded=state.excluded)
        return cls.checked(run_dir, load_manifest(state.manifest), checkpoints, Path(state.registry), state)

    @classmethod
    def checked(
        cls, run_dir: Path, manifest: Manifest, checkpoints: Checkpoints, registry: Path, state: RunState | None
    ) -> _Run:
        """The run, once its job is known to allow going back and it has a checkpoint to go back to."""
        job = manifest.job.metadata.name
        if manifest.job.spec.privacy.mode is not PrivacyMode.NONE:
            raise RecoveryError(
                f"job {job} runs with differential privacy: its later rounds were released and charged, and "
                "retraining them would release them again; start a new run from a stored model instead"
            )
        if not checkpoints.rounds():
            raise RecoveryError(
                f"{run_dir / CHECKPOINT_DIR} holds no checkpoint: the run never started a round; "
                "start it again with 'fedsilo run MANIFEST'"
            )
        return cls(run_dir, job, checkpoints, LocalRegistry(registry), state)

    def load(self, round_number: int) -> Checkpoint:
        try:
            return self.checkpoints.load(round_number)
        except CheckpointError as error:
            raise RecoveryError(str(error)) from None

    def lineage_rounds(self, rounds: range, forgotten: str | None) -> tuple[KeptRound, ...]:
        """The sealed lineage of ``rounds``, each verified with the hub's key and, with ``forgotten``, free of it."""
        key = load_signing_key(self.run_dir / AGGREGATOR_KEY).public_key
        kept: list[KeptRound] = []
        parent = None
        for number in rounds:
            try:
                ref = self.registry.show(self.job, number)
                verify_model(ref, key, parent)
            except (RegistryError, ModelVerificationError) as error:
                raise RecoveryError(f"the lineage of round {number} does not hold: {error}") from None
            lineage = ref.lineage
            if forgotten is not None and (forgotten in lineage.participants or forgotten in lineage.update_digests):
                raise RecoveryError(f"the sealed lineage of round {number} names {forgotten} among its contributors")
            kept.append(KeptRound(round=number, participants=lineage.participants, model_digest=lineage.model_digest))
            parent = ref
        return tuple(kept)


def rollback(run_dir: Path, to_round: int, reason: str) -> RecoveryReport:
    """Roll the run in ``run_dir`` back to round ``to_round``'s checkpoint; the report (also written beside the run).

    Raises:
        RecoveryError: no such run, round or checkpoint; a DP job; a run that is still going.
    """
    run = _Run.open(run_dir)
    if to_round == run.checkpoints.rounds()[-1]:
        raise RecoveryError(f"round {to_round} is the run's newest checkpoint: there is nothing to roll back")
    return _rollback(run, to_round, reason)


def _rollback(run: _Run, to_round: int, reason: str) -> RecoveryReport:
    rounds = run.checkpoints.rounds()
    if to_round not in rounds:
        raise RecoveryError(
            f"round {to_round} has no checkpoint in {run.checkpoints.directory}; "
            f"choose one of {', '.join(map(str, rounds))}"
        )
    return _apply(run, "rollback", to_round, reason, forgotten=None)


def apply_job_rollback(
    state_dir: Path, manifest: Manifest, checkpoints: Checkpoints, registry: Path
) -> RecoveryReport | None:
    """The aggregator pod's side of ``spec.rollback``: roll its state back once; the report, or None.

    None when the job asks for no rollback, or the rollback it asks for (round and reason)
    was applied before: the operator restarts the aggregator whenever the spec changes, and
    a rollback must be recorded and applied once. A job that had finished trains again, so
    its outcome file is removed.

    Raises:
        RecoveryError: the round has no checkpoint on the volume (the message lists those there are).
    """
    asked = manifest.job.spec.rollback
    if asked is None:
        return None
    for path in sorted((state_dir / REPORTS_DIR).glob("*-rollback.json")):
        try:
            done = RecoveryReport.parse(path.read_bytes())
        except MessageError as error:
            raise RecoveryError(f"the rollback report {path} is damaged ({error}); restore or remove it") from None
        if (done.to_round, done.reason) == (asked.to_round, asked.reason):
            return None
    report = _rollback(_Run.checked(state_dir, manifest, checkpoints, registry, None), asked.to_round, asked.reason)
    (state_dir / OUTCOME_FILE).unlink(missing_ok=True)
    return report


def unlearn(run_dir: Path, silo: str, reason: str) -> RecoveryReport:
    """Forget ``silo``: go back to the newest checkpoint holding none of its updates, and leave it out from now on.

    Raises:
        RecoveryError: no such run or silo; too few silos would remain; a DP job; a run still going.
    """
    state = read_run_state(run_dir)
    run = _Run.open(run_dir)
    manifest = load_manifest(state.manifest)
    if silo not in manifest.job.spec.silos:
        raise RecoveryError(
            f"silo {silo!r} is not in job {state.job} (its silos: {', '.join(manifest.job.spec.silos)})"
        )
    if silo in state.excluded:
        raise RecoveryError(f"silo {silo} was already forgotten in {run_dir}")
    remaining = without_silos(manifest, (*state.excluded, silo))
    # Checked before anything changes: the retrained job must pass the job policy, as any job must.
    decision = EmbeddedRegoEngine().decide_job(JobPolicyInput.from_job(remaining.job))
    if not decision.allow:
        raise RecoveryError(
            f"without {silo} the job policy ({decision.policy_revision}) refuses the job: {'; '.join(decision.reasons)}"
        )
    clean = 0
    for number in run.checkpoints.rounds():
        if silo in run.load(number).document.contributors():
            break
        clean = number
    return _apply(run, "unlearn", clean, reason, forgotten=silo)


def _apply(
    run: _Run, operation: Literal["rollback", "unlearn"], to_round: int, reason: str, forgotten: str | None
) -> RecoveryReport:
    """Record the decision, move the discarded rounds aside, write the report."""
    if not reason.strip():
        raise RecoveryError("--reason is empty: say why (it goes into the audit log)")
    newest = run.checkpoints.rounds()[-1]
    kept_checkpoint = run.load(to_round)
    kept = run.lineage_rounds(range(1, to_round + 1), forgotten)
    if forgotten is not None and forgotten in kept_checkpoint.document.contributors():
        raise RecoveryError(f"checkpoint {to_round} holds updates of {forgotten}")
    discarded = []
    for number in range(to_round + 1, newest + 1):
        try:
            lineage = run.registry.show(run.job, number).lineage
        except RegistryError:
            # The round's model was never stored (the run died in the registry write): nothing of it is kept.
            continue
        discarded.append(
            DiscardedRound(
                round=number,
                participants=lineage.participants,
                update_digests=lineage.update_digests,
                model_digest=lineage.model_digest,
            )
        )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    details = {
        "discarded_rounds": [d.round for d in discarded],
        "discarded_updates": {str(d.round): d.update_digests for d in discarded},
        "forgotten": [forgotten] if forgotten else [],
        "checkpoint": str(kept_checkpoint.path),
        "model_digest": kept_checkpoint.document.model_digest,
    }
    try:
        audit = AuditLog(run.run_dir / AUDIT_LOG, load_signing_key(run.run_dir / AGGREGATOR_KEY))
    except BlockingIOError:
        raise RecoveryError(f"a run is still using {run.run_dir}: stop it first") from None
    except (OSError, ValueError, AuditVerificationError) as error:
        raise RecoveryError(f"the run's audit log cannot be extended: {error}") from None
    with audit:
        head = audit.record_operation(
            job=run.job, operation=operation, round_number=to_round, reason=reason, details=details
        )
        moved = _move_aside(run, to_round, newest, stamp)
        if forgotten is not None and run.state is not None:
            excluded = (*run.state.excluded, forgotten)
            write_run_state(run.run_dir, run.state.model_copy(update={"excluded": excluded}))
    report = RecoveryReport(
        format="fedsilo.recovery/v1",
        operation=operation,
        job=run.job,
        reason=reason,
        to_round=to_round,
        from_round=newest,
        forgotten=(forgotten,) if forgotten else (),
        discarded=tuple(discarded),
        kept=kept,
        audit_head=head,
        moved_to=moved,
        decided_at=stamp,
    )
    folder = run.run_dir / REPORTS_DIR
    folder.mkdir(exist_ok=True)
    (folder / f"{stamp}-{operation}.json").write_bytes(report.canonical_bytes() + b"\n")
    return report


def _move_aside(run: _Run, to_round: int, newest: int, stamp: str) -> tuple[str, ...]:
    """Move the checkpoints and registry models after ``to_round`` into ``discarded/<stamp>`` folders."""
    moved = []
    targets = (
        (run.checkpoints.directory, run.checkpoints.directory / DISCARDED_DIR / stamp),
        (run.registry.root / run.job, run.registry.root / run.job / DISCARDED_DIR / stamp),
    )
    for source, target in targets:
        for number in range(to_round + 1, newest + 1):
            for path in sorted(source.glob(f"round-{number:05d}.*")):
                target.mkdir(parents=True, exist_ok=True)
                shutil.move(path, target / path.name)
        if target.is_dir():
            moved.append(str(target))
    return tuple(moved)
