"""``fedsilo operator`` and ``fedsilo aggregator``: the two hub-side processes a cluster runs.

``fedsilo operator`` is the operator image's command (``operator/Dockerfile``); it hands
its flags to :func:`fedsilo.operator.run_operator`. ``fedsilo aggregator`` is what the
operator's aggregator Deployment runs (``fedsilo.operator`` builds its arguments and mounts):

- ``--job-config``: the job ConfigMap's ``job.yaml`` (the job and its Silos with their
  public keys); the silos' CA bundle ``silo-ca.crt`` sits beside it in the same ConfigMap;
- ``--tls-dir``: the serving certificate Secret (``tls.crt``, ``tls.key``; its ``ca.crt`` is
  the aggregator's own CA, which silos trust, not one this process verifies clients with);
- ``--state-dir``: the audit log, its signing key, the model registry and, for a DP job,
  the hub's privacy ledger;
- ``--policy-url``: OPA beside it on loopback; an unreachable OPA denies (fail closed);
- ``FEDSILO_JOB_NAME`` / ``_NAMESPACE`` / ``_UID`` / ``FEDSILO_POD_NAME``: which job's status
  to report to. Without them (outside a cluster) nothing is reported, and a log line says so.

The hub itself is built by :func:`fedsilo.runner.build_hub`, as ``fedsilo run`` builds its own.
Kubernetes and kopf are imported inside the handlers, so ``fedsilo sidecar`` and ``fedsilo
trainer`` (same command line, same image) never load the operator's client libraries.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import start_http_server

from fedsilo.aggregator import JobFailed, LedgerBook, start_server
from fedsilo.api import JobOutcome, Manifest, StatusReporter
from fedsilo.identity import TlsCredentials
from fedsilo.policy import OpaServerEngine
from fedsilo.registry import LocalRegistry
from fedsilo.runner import HubSetupError, RecordingRegistry, ReportingObserver, build_hub

from ._exit import EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from ._manifests import manifest_or_report

log = logging.getLogger("fedsilo.cli")

#: Beside ``--job-config`` (the operator's job ConfigMap): the silos' CA certificates, concatenated.
SILO_CA_FILE = "silo-ca.crt"
#: In ``--tls-dir`` (the operator's kubernetes.io/tls Secret).
TLS_CERT_FILE = "tls.crt"
TLS_KEY_FILE = "tls.key"
#: Under ``--state-dir``.
REGISTRY_DIR = "registry"
OUTCOME_FILE = "outcome.json"
#: The hub's privacy ledger (DP jobs only), as ``fedsilo run`` keeps ``hub.sqlite``.
PRIVACY_LEDGER_FILE = "privacy-ledger.sqlite"

#: The choices of ``--role`` (``fedsilo.operator.OperatorRole``; a test keeps them equal).
OPERATOR_ROLES = ("hub", "silo", "both")
#: Without a status reporter the aggregator exits after the job, but first keeps serving this
#: long: a silo that has not yet asked for the next round must still learn that there is none.
FINISH_LINGER_SECONDS = 10.0


class _Terminated(Exception):
    """SIGTERM arrived: the kubelet (or a user) wants the process gone."""


def _raise_on_sigterm() -> None:
    """Turn the first SIGTERM into :class:`_Terminated` in the main thread, so ``finally`` blocks run.

    Without this, SIGTERM ends Python at once and the audit log misses its closing signed
    checkpoint. Later SIGTERMs are ignored so the clean-up is not cut short (the kubelet
    still kills the process after the pod's grace period).
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Terminated

    signal.signal(signal.SIGTERM, handler)


# ----- fedsilo operator ----------------------------------------------------------------------


def _port_or_none(port: int) -> int | None:
    return port or None


def _operator(args: argparse.Namespace) -> int:
    from fedsilo.operator import OperatorConfig, run_operator

    defaults = OperatorConfig()
    config = OperatorConfig(
        image=args.image or defaults.image,
        trainer_image=args.trainer_image or defaults.trainer_image,
        opa_image=args.opa_image or defaults.opa_image,
        image_pull_policy=args.image_pull_policy or defaults.image_pull_policy,
        cluster_domain=args.cluster_domain or defaults.cluster_domain,
    )
    if args.policy_params is not None:
        from fedsilo.operator import PolicyParameters
        from fedsilo.protocol import MessageError

        try:
            config = replace(config, policy_parameters=PolicyParameters.read(args.policy_params))
        except (OSError, MessageError) as error:
            print(f"error: --policy-params {args.policy_params}: {error}", file=sys.stderr)
            return EXIT_USAGE
    if args.kubeconfig is not None and not args.kubeconfig.is_file():
        print(f"error: --kubeconfig {args.kubeconfig} is not a file", file=sys.stderr)
        return EXIT_USAGE
    run_operator(
        args.role,
        args.namespace,
        kubeconfig=args.kubeconfig,
        config=config,
        metrics_port=_port_or_none(args.metrics_port),
        liveness_port=_port_or_none(args.liveness_port),
        peering=not args.no_peering,
        priority=args.priority,
    )
    return EXIT_OK


# ----- fedsilo aggregator --------------------------------------------------------------------


def serving_credentials(tls_dir: Path, client_ca: Path) -> TlsCredentials:
    """The gRPC server's key and certificate from ``tls_dir``, with ``client_ca`` as the CA clients must chain to.

    Raises:
        FileNotFoundError: a file is missing; the message names it and where it comes from.
    """
    missing = [path for path in (tls_dir / TLS_CERT_FILE, tls_dir / TLS_KEY_FILE) if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{', '.join(map(str, missing))} missing: --tls-dir must hold the serving certificate Secret "
            f"({TLS_CERT_FILE}, {TLS_KEY_FILE})"
        )
    if not client_ca.is_file():
        raise FileNotFoundError(
            f"{client_ca} missing: without the silos' CA bundle ({SILO_CA_FILE} beside --job-config) "
            "no silo's client certificate could be verified"
        )
    return TlsCredentials(
        private_key_pem=(tls_dir / TLS_KEY_FILE).read_bytes(),
        certificate_pem=(tls_dir / TLS_CERT_FILE).read_bytes(),
        ca_certificate_pem=client_ca.read_bytes(),
    )


def _status_reporter(job: str) -> StatusReporter | None:
    """The cluster's status reporter if the pod's environment names the job; None outside a cluster.

    Raises:
        ValueError: the environment names only part of the job, or another job.
    """
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
        raise ValueError(f"{', '.join(present)} set but {missing} not: set all of them or none")
    if os.environ[JOB_NAME_VARIABLE] != job:
        raise ValueError(f"{JOB_NAME_VARIABLE} is {os.environ[JOB_NAME_VARIABLE]!r} but --job-config holds job {job!r}")
    reporter = KubeStatusReporter.from_environment()
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


def _privacy_book(manifest: Manifest, state_dir: Path) -> LedgerBook | None:
    """The hub's ledger of a DP job, which recomputes and charges each silo's epsilon; None without DP.

    Its charges are keyed by the job and its UID (the pod's environment), so a job deleted
    and created again under the same name starts a new charge history, as a rerun of
    ``fedsilo run`` does.
    """
    from fedsilo.kube import JOB_UID_VARIABLE

    state_dir.mkdir(parents=True, exist_ok=True)
    run = os.environ.get(JOB_UID_VARIABLE) or "standalone"
    return LedgerBook.for_job(manifest.job, state_dir / PRIVACY_LEDGER_FILE, run)


def _wait_for_termination() -> None:
    """Idle until SIGTERM: a Deployment restarts an exited container, which would run the job again."""
    log.warning("job over; waiting for the operator to scale this aggregator down")
    try:
        while True:
            time.sleep(3600)
    except _Terminated:
        return


def _exit_code(outcome: JobOutcome) -> int:
    return EXIT_OK if outcome.succeeded else EXIT_FAILED


def _aggregator(args: argparse.Namespace) -> int:
    manifest = manifest_or_report(args.job_config)
    if manifest is None:
        return EXIT_USAGE
    job = manifest.job.metadata.name
    try:
        credentials = serving_credentials(args.tls_dir, args.job_config.parent / SILO_CA_FILE)
        engine = OpaServerEngine(args.policy_url)
        reporter = _status_reporter(job)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    # kubernetes' ConfigException and whatever a broken token file raises: the environment failed.
    except Exception as error:
        print(f"error: cannot reach the Kubernetes API for status reports: {error}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    _raise_on_sigterm()
    try:
        return _serve(args, manifest, credentials, engine, reporter)
    except _Terminated:
        print("terminated", file=sys.stderr)
        return EXIT_FAILED


def _serve(
    args: argparse.Namespace,
    manifest: Manifest,
    credentials: TlsCredentials,
    engine: OpaServerEngine,
    reporter: StatusReporter | None,
) -> int:
    job = manifest.job.metadata.name
    state_dir: Path = args.state_dir
    outcome_file = state_dir / OUTCOME_FILE
    previous = _recorded_outcome(outcome_file, job)
    if previous is not None:
        # The container restarted after the job ended: report again (heals a lost report), never rerun.
        print(f"job {job} already ended ({outcome_file}): {previous.message}", file=sys.stderr)
        if reporter is not None:
            # Stopped while re-reporting or idling: the job's own outcome is still the exit code.
            with contextlib.suppress(_Terminated):
                reporter.job_finished(previous)
                _wait_for_termination()
        return _exit_code(previous)
    registry = RecordingRegistry(LocalRegistry(state_dir / REGISTRY_DIR))
    observer = ReportingObserver(reporter, registry) if reporter is not None else None
    privacy = _privacy_book(manifest, state_dir)
    try:
        hub = build_hub(
            manifest.job,
            manifest.silos,
            state_dir=state_dir,
            engine=engine,
            registry=registry,
            observer=observer,
            privacy=privacy,
        )
    except HubSetupError as error:
        print(f"error: {error}", file=sys.stderr)
        if observer is not None:
            observer.close(None)
        if privacy is not None:
            privacy.close()
        return EXIT_USAGE
    outcome: JobOutcome | None = None
    try:
        if args.metrics_port:
            start_http_server(args.metrics_port)
        try:
            server, port = start_server(hub.coordinator, args.listen, credentials)
        except (OSError, RuntimeError) as error:
            print(f"error: cannot serve gRPC on {args.listen}: {error}", file=sys.stderr)
            return EXIT_ENVIRONMENT
        print(
            f"aggregator of job {job} on {args.listen} (port {port}), policy at {args.policy_url}, "
            f"state in {state_dir}, audit key {hub.public_key.to_base64()}",
            file=sys.stderr,
        )
        try:
            try:
                summaries = hub.coordinator.run()
                outcome = JobOutcome(True, len(summaries), f"all {len(summaries)} rounds completed")
            except JobFailed as error:
                outcome = JobOutcome(False, len(hub.coordinator.summaries), str(error))
                print(f"job {job} failed: {error}", file=sys.stderr)
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
    return _exit_code(outcome)


def register(commands: Any) -> None:
    """Add ``operator`` and ``aggregator``."""
    operator = commands.add_parser(
        "operator",
        help="run the Kubernetes operator (hub: aggregators; silo: identities and silo pods)",
        description="Run the fedsilo operator until SIGTERM. Ports set to 0 are not served.",
    )
    operator.add_argument("--role", choices=OPERATOR_ROLES, required=True, help="which half to run")
    operator.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch and create objects in NS (repeat for more); none means cluster-wide",
    )
    operator.add_argument("--kubeconfig", type=Path, help="credentials file (default: in-cluster, else $KUBECONFIG)")
    operator.add_argument("--metrics-port", type=int, default=8080, help="Prometheus /metrics port (default 8080)")
    operator.add_argument("--liveness-port", type=int, default=8081, help="/healthz port for probes (default 8081)")
    operator.add_argument("--no-peering", action="store_true", help="run standalone, without kopf peering")
    operator.add_argument("--priority", type=int, help="peering priority of this replica (default random)")
    operator.add_argument("--image", help="image of the aggregator and sidecar pods")
    operator.add_argument("--trainer-image", help="default image of trainer pods")
    operator.add_argument("--opa-image", help="image of the OPA container beside each aggregator")
    operator.add_argument(
        "--policy-params",
        type=Path,
        help="JSON file of job-policy parameters for this installation (docs/policy-input.md)",
    )
    operator.add_argument(
        "--image-pull-policy", choices=("Always", "IfNotPresent", "Never"), help="of the pods' containers"
    )
    operator.add_argument("--cluster-domain", help="DNS suffix of Services (default cluster.local)")
    operator.set_defaults(handler=_operator)

    aggregator = commands.add_parser(
        "aggregator",
        help="run a job's aggregator (the hub's gRPC server), as the operator's Deployment does",
        description=(
            f"Serve one job's rounds over mutual TLS. The silos' CA bundle is read from {SILO_CA_FILE} "
            "beside --job-config. Exits 0 when the job succeeded, 1 when it failed; in a cluster "
            "(FEDSILO_JOB_* set) it then waits to be stopped, so that it is not restarted into the same job."
        ),
    )
    aggregator.add_argument("--job-config", type=Path, required=True, help="manifest with the job and its silos")
    aggregator.add_argument("--listen", required=True, help="HOST:PORT of the mTLS gRPC server")
    aggregator.add_argument("--tls-dir", type=Path, required=True, help=f"{TLS_CERT_FILE} and {TLS_KEY_FILE}")
    aggregator.add_argument("--state-dir", type=Path, required=True, help="audit log, its signing key, model registry")
    aggregator.add_argument("--policy-url", required=True, help="the OPA server, e.g. http://127.0.0.1:8181")
    aggregator.add_argument("--metrics-port", type=int, default=0, help="Prometheus /metrics port (0: none)")
    aggregator.set_defaults(handler=_aggregator)
