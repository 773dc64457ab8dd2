"""``fedsilo aggregator``'s whole life: one job's hub in the pod the operator runs.

The command line (``fedsilo.cli``) parses :class:`~fedsilo.launch.AggregatorArgs`, reads the
manifest and calls :func:`run_aggregator`; everything from here to the job's outcome lives in
this module:

- the serving credentials from ``--tls-dir``, and each silo's own CAs beside ``--job-config``
  (:func:`fedsilo.launch.silo_ca_file`, one CA or two while the silo's CA is rotated): a client
  certificate must chain to one of them, and the gRPC service accepts it for a silo only if one
  of that silo's CAs issued it; the files are followed as the kubelet updates them
  (:class:`fedsilo.aggregator.SiloTrust`), so a rotation needs no restart;
- the status reporter, when the pod's environment names the job (``FEDSILO_JOB_*``; outside
  a cluster nothing is reported, and a log line says so);
- the hub (:func:`fedsilo.runner.build_hub`, as ``fedsilo run`` builds its own) with OPA as
  its engine (an unreachable OPA denies: fail closed), the registry and, for a DP job, the
  hub's privacy ledger, all under ``--state-dir``;
- the job's outcome, written to the state directory before it is reported, so a restarted
  container re-reports it and never reruns the job;
- a statistics-only job (``spec.rounds: 0``): its statistics phase, the release published,
  then its outcome, with no training server started and no round opened;
- the checkpoint of every closed round in the state directory (a PersistentVolumeClaim): a
  container restarted or a pod deleted mid-job resumes at the last completed round, and the
  silos' sidecars join it again;
- SIGTERM, which the kubelet sends when the operator scales the job down: the process idles
  until then after the job, because a Deployment would restart an exited container.

Errors are typed so the command line can map them to exit codes: :class:`AggregatorConfigError`
(bad configuration, nothing started), :class:`AggregatorEnvironmentError` (the API server or
the port failed) and :class:`fedsilo.launch.Terminated` (SIGTERM before the job ended).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import start_http_server

from fedsilo.aggregator import Checkpoints, JobFailed, LedgerBook, SiloTrust, TrustFilesError, start_server
from fedsilo.api import JobOutcome, Manifest, StatusReporter
from fedsilo.audit import AuditLog
from fedsilo.datasets import PREPROCESSING_FILE, FittedPreprocessing
from fedsilo.identity import TLS_CERT_FILE, TLS_KEY_FILE, TlsCredentials
from fedsilo.launch import (
    AGGREGATOR_KEY,
    OUTCOME_FILE,
    PRIVACY_LEDGER_FILE,
    REGISTRY_DIR,
    AggregatorArgs,
    Terminated,
    raise_on_sigterm,
    silo_ca_file,
)
from fedsilo.policy import OpaServerEngine, PolicyGate
from fedsilo.privacy.ledger import run_name
from fedsilo.registry import LocalRegistry
from fedsilo.statistics import StatisticsError

from ._gate import AUDIT_LOG
from ._hub import HubSetupError, adopt_published_key, aggregator_signing_key, build_hub, registered_silo_keys
from ._recovery import RecoveryError, apply_job_rollback, latest_checkpoint, resume_hub
from ._reporting import RecordingRegistry, ReportingObserver
from ._standing import manifest_standing
from ._statistics import STATISTICS_DIR, HubStatistics, open_hub_ledger, statistics_status, write_statistics

log = logging.getLogger("fedsilo.aggregator")

#: How a statistics-only job (``spec.rounds: 0``) ends once its statistics are released.
STATISTICS_ONLY_OUTCOME = "statistics released; a statistics-only job (spec.rounds 0) trains no round"

#: Without a status reporter the aggregator exits after the job, but first keeps serving this
#: long: a silo that has not yet asked for the next round must still learn that there is none.
FINISH_LINGER_SECONDS = 10.0


class AggregatorConfigError(ValueError):
    """The job, its files or the pod's environment are wrong; nothing was started. The message says what."""


class AggregatorEnvironmentError(RuntimeError):
    """The environment failed: the Kubernetes API for status reports, or the gRPC port."""


def silo_issuers(job_dir: Path, silos: Iterable[str]) -> SiloTrust:
    """Each enrolled silo's own CAs, read from its file in ``job_dir`` and followed as the file changes.

    Raises:
        AggregatorConfigError: a silo has no CA file, an empty one or one that holds no CA
            certificate; the message names the silos and files. Without its CA a silo could not
            be told from a silo whose certificate another partner's CA minted, so the aggregator
            does not start.
    """
    try:
        return SiloTrust.from_files({silo: job_dir / silo_ca_file(silo) for silo in silos})
    except TrustFilesError as error:
        raise AggregatorConfigError(
            f"{error}: every enrolled silo's own CA must be beside --job-config (the operator writes it from "
            "the Silo's status.identity.caCertificate); without it another partner's CA could mint that silo's "
            "certificate"
        ) from error


def serving_credentials(tls_dir: Path, client_cas: bytes) -> TlsCredentials:
    """The gRPC server's key and certificate from ``tls_dir``; clients must chain to one of ``client_cas`` (PEM).

    Raises:
        AggregatorConfigError: a file is missing; the message names it and where it comes from.
    """
    missing = [path for path in (tls_dir / TLS_CERT_FILE, tls_dir / TLS_KEY_FILE) if not path.is_file()]
    if missing:
        raise AggregatorConfigError(
            f"{', '.join(map(str, missing))} missing: --tls-dir must hold the serving certificate Secret "
            f"({TLS_CERT_FILE}, {TLS_KEY_FILE})"
        )
    return TlsCredentials(
        private_key_pem=(tls_dir / TLS_KEY_FILE).read_bytes(),
        certificate_pem=(tls_dir / TLS_CERT_FILE).read_bytes(),
        # TLS admits any silo's CA; the service then holds each certificate to its own silo's CAs.
        ca_certificate_pem=client_cas,
    )


def status_reporter(job: str) -> StatusReporter | None:
    """The cluster's status reporter if the pod's environment names the job; None outside a cluster.

    Raises:
        AggregatorConfigError: the environment names only part of the job, or another job.
        AggregatorEnvironmentError: the Kubernetes API's credentials cannot be loaded.
    """
    # Imported here: outside a cluster the aggregator never loads the Kubernetes client.
    from fedsilo.kube import JOB_NAME_VARIABLE, JOB_NAMESPACE_VARIABLE, JOB_UID_VARIABLE, KubeStatusReporter

    variables = (JOB_NAME_VARIABLE, JOB_NAMESPACE_VARIABLE, JOB_UID_VARIABLE)
    present = [name for name in variables if os.environ.get(name)]
    if not present:
        log.warning(
            "no status reporter: %s are not set (not in a cluster); progress is in this log, "
            "the audit log and the registry only",
            ", ".join(variables),
        )
        return None
    if len(present) < len(variables):
        missing = ", ".join(name for name in variables if name not in present)
        raise AggregatorConfigError(f"{', '.join(present)} set but {missing} not: set all of them or none")
    if os.environ[JOB_NAME_VARIABLE] != job:
        raise AggregatorConfigError(
            f"{JOB_NAME_VARIABLE} is {os.environ[JOB_NAME_VARIABLE]!r} but --job-config holds job {job!r}"
        )
    try:
        reporter = KubeStatusReporter.from_environment()
    # kubernetes' ConfigException and whatever a broken token file raises: the environment failed.
    except Exception as error:
        raise AggregatorEnvironmentError(f"cannot reach the Kubernetes API for status reports: {error}") from error
    log.warning(
        "reporting status to FederatedJob %s/%s", os.environ[JOB_NAMESPACE_VARIABLE], os.environ[JOB_NAME_VARIABLE]
    )
    return reporter


def _recorded_outcome(path: Path, job: str) -> JobOutcome | None:
    """The outcome a previous run of this job left in the state directory, if any."""
    if not path.is_file():
        return None
    document = json.loads(path.read_text())
    if document.get("job") != job:
        return None
    return JobOutcome(bool(document["succeeded"]), int(document["rounds_completed"]), str(document["message"]))


def _record_outcome(path: Path, job: str, outcome: JobOutcome) -> None:
    # Written before it is reported: a restarted container finds it and does not run the job again.
    document = {
        "job": job,
        "succeeded": outcome.succeeded,
        "rounds_completed": outcome.rounds_completed,
        "message": outcome.message,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def _ledger_run() -> str:
    """The run id both ledgers name this job's charges by: the job's UID, stable across pod restarts."""
    from fedsilo.kube import JOB_UID_VARIABLE

    return os.environ.get(JOB_UID_VARIABLE) or "standalone"


def _privacy_book(manifest: Manifest, state_dir: Path, resumed_round: int) -> LedgerBook | None:
    """The hub's ledger of a DP job, which recomputes and charges each silo's epsilon; None without DP.

    Its charges are keyed by the job and its UID (the pod's environment), so a job deleted
    and created again under the same name starts a new charge history, as a rerun of
    ``fedsilo run`` does.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    # Signed with the hub's key, the one that signs the audit log in the same directory.
    return LedgerBook.for_job(
        manifest.job,
        state_dir / PRIVACY_LEDGER_FILE,
        _ledger_run(),
        aggregator_signing_key(state_dir),
        resumed_round=resumed_round,
    )


def _statistics_phase(
    args: AggregatorArgs,
    manifest: Manifest,
    credentials: TlsCredentials,
    trust: SiloTrust,
    engine: OpaServerEngine,
) -> FittedPreprocessing | None:
    """Serve the job's statistics phase before round 1 when it asks for federated preprocessing; the transform.

    Served on ``--listen`` until the phase ends (then training takes the address; the
    sidecars' Join retries meanwhile). Its files go to ``STATISTICS_DIR`` in the state
    directory, the transform into the job's registry there too, and its decisions and
    release to the audit log there. A restarted aggregator
    that finds the transform there does not run the phase again: its silos are past it.

    Raises:
        StatisticsError: the phase failed (the message names the silos left out and why).
    """
    spec = manifest.job.spec
    if spec.data.preprocessing is None or not spec.data.preprocessing.federated:
        return None
    out = args.state_dir / STATISTICS_DIR
    job = manifest.job.metadata.name
    if (out / PREPROCESSING_FILE).is_file():
        log.warning("statistics phase already done: using %s", out / PREPROCESSING_FILE)
        return _keep_transform(args.state_dir, job, FittedPreprocessing.read(out / PREPROCESSING_FILE))
    args.state_dir.mkdir(parents=True, exist_ok=True)
    gate = PolicyGate(engine, AuditLog(args.state_dir / AUDIT_LOG, aggregator_signing_key(args.state_dir)))
    # The hub's ledger of a private phase: the one the rounds' book charges after it (``_privacy_book``).
    ledger = open_hub_ledger(spec, args.state_dir / PRIVACY_LEDGER_FILE, args.state_dir)
    try:
        with HubStatistics(
            manifest.job,
            run_name(job, _ledger_run()),
            registered_silo_keys(manifest.job, manifest.silos),
            gate,
            args.listen,
            credentials,
            trust=trust,
            ceilings={s.metadata.name: s.spec.max_epsilon for s in manifest.silos},
            # Pods start at their own pace: the join, and each step, wait as long as a round would.
            step_seconds=float(spec.round_timeout_seconds),
            join_seconds=float(spec.round_timeout_seconds),
            ledger=ledger,
        ) as hub:
            log.warning("statistics phase of job %s on %s (port %d)", job, args.listen, hub.port)
            release = hub.release()
    finally:
        gate.audit.close()
        if ledger is not None:
            ledger.close()
    files = write_statistics(release, out)
    log.warning(
        "statistics phase of job %s done: %d silos, %s; preprocessing %s",
        job,
        len(files.statistics.silos),
        files.json,
        files.preprocessing.digest() if files.preprocessing else "none",
    )
    return _keep_transform(args.state_dir, job, files.preprocessing) if files.preprocessing else None


def _keep_transform(state_dir: Path, job: str, fitted: FittedPreprocessing) -> FittedPreprocessing:
    """Keep ``fitted`` in the job's registry by its digest, as ``fedsilo run`` does; ``fitted``.

    Every round's lineage names the digest and ``fedsilo models verify`` reads the file it names,
    so the registry the aggregator fills must hold it (kept again after a restart: the same bytes).
    """
    LocalRegistry(state_dir / REGISTRY_DIR).save_preprocessing(job, fitted.canonical_bytes())
    return fitted


def _report_statistics(reporter: StatusReporter, out: Path, privacy: LedgerBook | None = None) -> None:
    """Publish the phase's release on the job (again, after a restart); a report that fails never stops the job.

    A private release's charges are read from the hub's ledger (``privacy``), as the rounds' epsilons are.
    """
    try:
        status = statistics_status(out)
        if privacy is not None and status.epsilon is not None:
            status = status.model_copy(update={"epsilon_spent": privacy.statistics_spent(tuple(status.silos)) or None})
        reporter.statistics_released(status)
    except (OSError, ValueError) as error:
        log.warning("the statistics phase's release is not in the job's status: %s in %s", error, out)


def _end_before_training(
    outcome_file: Path, job: str, reporter: StatusReporter | None, outcome: JobOutcome
) -> JobOutcome:
    """End a job whose statistics phase was its end (it failed, or the job is statistics-only); ``outcome``.

    Recorded before it is reported, as a trained job's outcome is, so a restarted container does not
    run the phase again. Nothing serves after the phase: its last answers went to every silo with it.
    """
    log.warning("job %s: %s", job, outcome.message)
    _record_outcome(outcome_file, job, outcome)
    if reporter is not None:
        with contextlib.suppress(Terminated):
            reporter.job_finished(outcome)
            _wait_for_termination()
    return outcome


def _wait_for_termination() -> None:
    """Idle until SIGTERM: a Deployment restarts an exited container, which would run the job again."""
    log.warning("job over; waiting for the operator to scale this aggregator down")
    try:
        while True:
            time.sleep(3600)
    except Terminated:
        return


def run_aggregator(args: AggregatorArgs, manifest: Manifest) -> JobOutcome:
    """Serve the job's statistics phase and rounds until it ends (or has ended before); its outcome.

    Raises:
        AggregatorConfigError: bad files, environment or job; nothing was started.
        AggregatorEnvironmentError: the API server or the gRPC port failed.
        Terminated: SIGTERM arrived before the job ended.
    """
    job = manifest.job.metadata.name
    try:
        trust = silo_issuers(args.job_config.parent, manifest.job.spec.silos)
        credentials = serving_credentials(args.tls_dir, trust.roots())
        engine = OpaServerEngine(args.policy_url)
    except (OSError, ValueError) as error:
        raise AggregatorConfigError(str(error)) from error
    reporter = status_reporter(job)
    raise_on_sigterm()
    return _serve(args, manifest, credentials, trust, engine, reporter)


def _serve(
    args: AggregatorArgs,
    manifest: Manifest,
    credentials: TlsCredentials,
    trust: SiloTrust,
    engine: OpaServerEngine,
    reporter: StatusReporter | None,
) -> JobOutcome:
    job = manifest.job.metadata.name
    state_dir = args.state_dir
    outcome_file = state_dir / OUTCOME_FILE
    checkpoints = Checkpoints(state_dir, ledger_run=run_name(job, _ledger_run()))
    try:
        # Before the outcome is read: a finished job rolled back trains again.
        rolled = apply_job_rollback(state_dir, manifest, checkpoints, state_dir / REGISTRY_DIR)
    except RecoveryError as error:
        raise AggregatorConfigError(f"spec.rollback: {error}") from error
    if rolled is not None:
        log.warning(
            "rolled back to round %d (%s): discarded rounds %s",
            rolled.to_round,
            rolled.reason,
            [d.round for d in rolled.discarded],
        )
    previous = _recorded_outcome(outcome_file, job)
    if previous is not None:
        # The container restarted after the job ended: report again (heals a lost report), never rerun.
        log.warning("job %s already ended (%s): %s", job, outcome_file, previous.message)
        if reporter is not None:
            # Stopped while re-reporting or idling: the job's own outcome is still the result.
            with contextlib.suppress(Terminated):
                reporter.job_finished(previous)
                _wait_for_termination()
        return previous
    if (args.tls_dir / AGGREGATOR_KEY).exists():
        # The operator made the job's signing key beside the serving pair and published its public half.
        try:
            adopt_published_key(args.tls_dir / AGGREGATOR_KEY, state_dir)
        except HubSetupError as error:
            raise AggregatorConfigError(str(error)) from error
    registry = RecordingRegistry(LocalRegistry(state_dir / REGISTRY_DIR))
    try:
        checkpoint = latest_checkpoint(checkpoints)
    except RecoveryError as error:
        raise AggregatorConfigError(str(error)) from error
    try:
        preprocessing = _statistics_phase(args, manifest, credentials, trust, engine)
    except StatisticsError as error:
        # The job cannot train without its transform: it ends here, reported as any failed job.
        return _end_before_training(
            outcome_file, job, reporter, JobOutcome(False, 0, f"the statistics phase failed: {error}")
        )
    # The round a restarted aggregator runs again: its releases may already be charged.
    privacy = _privacy_book(manifest, state_dir, (checkpoint.round if checkpoint else 0) + 1)
    if reporter is not None and preprocessing is not None:
        _report_statistics(reporter, args.state_dir / STATISTICS_DIR, privacy)
    if manifest.job.spec.statistics_only:
        # Released (and published) above; the phase acknowledged its own charges, so the book has nothing
        # left to do, and no round opens: the silos' sidecars end with the phase by the same rule.
        if privacy is not None:
            privacy.close()
        return _end_before_training(outcome_file, job, reporter, JobOutcome(True, 0, STATISTICS_ONLY_OUTCOME))
    # Seeded with what the ledger holds: the statistics' charges, and a restarted hub's rounds before it.
    spent = privacy.spent() if privacy is not None else {}
    observer = ReportingObserver(reporter, registry, spent) if reporter is not None else None
    try:
        hub = build_hub(
            manifest.job,
            manifest.silos,
            state_dir=state_dir,
            engine=engine,
            registry=registry,
            observer=observer,
            privacy=privacy,
            # The ConfigMap the operator re-renders when a Silo is suspended or rotates its key;
            # the kubelet updates the mounted file, and the next round boundary takes it.
            standing=manifest_standing(args.job_config, job),
            checkpoints=checkpoints,
            preprocessing=preprocessing,
        )
    except HubSetupError as error:
        if observer is not None:
            observer.close(None)
        if privacy is not None:
            privacy.close()
        raise AggregatorConfigError(str(error)) from error
    if checkpoint is not None:
        try:
            resume_hub(hub, checkpoint, "the aggregator restarted")
        except RecoveryError as error:
            if observer is not None:
                observer.close(None)
            hub.close()
            if privacy is not None:
                privacy.close()
            raise AggregatorConfigError(str(error)) from error
    outcome: JobOutcome | None = None
    try:
        if args.metrics_port:
            start_http_server(args.metrics_port)
        try:
            server, port = start_server(hub.coordinator, args.listen, credentials, trust=trust)
        except (OSError, RuntimeError) as error:
            raise AggregatorEnvironmentError(f"cannot serve gRPC on {args.listen}: {error}") from error
        log.warning(
            "aggregator of job %s on %s (port %d), policy at %s, state in %s, audit key %s",
            job,
            args.listen,
            port,
            args.policy_url,
            state_dir,
            hub.public_key.to_base64(),
        )
        try:
            try:
                summaries = hub.coordinator.run()
                outcome = JobOutcome(True, len(summaries), f"all {len(summaries)} rounds completed")
            except JobFailed as error:
                outcome = JobOutcome(False, len(hub.coordinator.summaries), str(error))
                log.warning("job %s failed: %s", job, error)
            _record_outcome(outcome_file, job, outcome)
            if observer is not None:
                observer.close(outcome)
                observer = None
                _wait_for_termination()
            else:
                time.sleep(FINISH_LINGER_SECONDS)
        finally:
            server.stop(grace=2).wait()
    finally:
        if observer is not None:
            observer.close(outcome)
        hub.close()
        if privacy is not None:
            privacy.close()
    return outcome
