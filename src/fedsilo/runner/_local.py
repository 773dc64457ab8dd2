"""``fedsilo run``: a whole federated job on one machine, with the manifests a cluster takes.

:meth:`LocalRun.execute` returns everything the command shows: the rounds, the centralized
baseline, the plots and ``report.json`` in the run directory; the command only prints it.

The aggregator runs in a child process this one supervises (``_supervised``) behind a real
mutual-TLS gRPC server on loopback; when it dies the runner restarts it from the newest
checkpoint on the same port, and the silos reconnect. Every silo gets a sidecar process
(its only network path) and a trainer process that reaches only its sidecar, over a Unix
socket authenticated by a per-silo token, from the sandbox ``_isolation`` builds (its own
uid, network and mount namespaces where the OS allows them). Both processes exit when this
one dies. A CA per run and every key are created inside the run directory (mode 0700) and
kept there for restarts and ``--resume``; nothing listens in plaintext.

Every closed round is checkpointed in the run directory, which also holds ``run.json``
(``_recovery``): ``RunOptions(resume=True)`` (``fedsilo run --resume RUN_DIR``) goes on from
the newest checkpoint with the same silo identities, hub key and ledger run name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from fedsilo.aggregator import CHECKPOINT_DIR, RoundObserver
from fedsilo.api import Manifest, Silo, consent_refusals
from fedsilo.datasets import FittedPreprocessing
from fedsilo.identity import (
    CertificateAuthority,
    SigningKey,
    SiloIdentity,
    VerifyKey,
    read_identity,
    write_identity,
)
from fedsilo.launch import (
    AGGREGATOR_PUBLIC_KEY,
    MANIFEST_FILE,
    LaunchArgs,
    SidecarArgs,
    TrainerArgs,
    render_job_manifest,
)
from fedsilo.policy import EmbeddedRegoEngine, JobPolicyInput
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.protocol import LINK_TOKEN_ENV, PARENT_PID_ENV
from fedsilo.statistics import released_epsilon

from ._children import ChildWatch, SiloProcesses
from ._hub import aggregator_signing_key
from ._isolation import Isolation, check_link_sockets, detect_isolation, link_socket
from ._recovery import RunState, read_run_state, write_run_state
from ._report import RoundRow, RunReport, write_plot, write_privacy_plot
from ._statistics import HUB_LEDGER_FILE, STATISTICS_DIR, StatisticsFiles, read_statistics
from ._supervised import HubLaunch, HubSetup, SupervisedHub, free_port, run_credentials

# Seconds a silo process gets to exit on its own after the job ends, before SIGTERM.
EXIT_GRACE_SECONDS = 20.0


@dataclass(frozen=True)
class RunOptions:
    """How ``fedsilo run`` runs a manifest."""

    manifest_path: Path
    workdir: Path | None = None
    registry: Path = Path("runs/registry")
    identity_dir: Path | None = None
    isolate: bool = True
    # Train the centralized baseline on the pooled data after the job (the plot's reference line).
    baseline: bool = True
    # The accuracy plot (default ``accuracy.png`` in the run directory); a DP job's accuracy
    # against epsilon goes beside it as ``<stem>-epsilon.png``.
    plot: Path | None = None
    # Privacy ledgers (DP jobs only): the hub's and one per silo, kept across runs so a
    # silo's lifetime ceiling counts every job it took part in.
    ledgers: Path = Path("runs/privacy")
    # Serve the hub's Prometheus /metrics on 127.0.0.1 at this port while the job runs (0: any
    # free port, ``LocalRun.metrics_port`` says which; None: none), as the aggregator pod does.
    metrics_port: int | None = None
    # Go on in ``workdir`` from its newest checkpoint (``fedsilo run --resume``).
    resume: bool = False
    # How often the hub may die and be restarted (from its newest checkpoint, on the same port,
    # the silos staying up) before the job fails (``--max-hub-restarts``).
    max_hub_restarts: int = 3

    def hub_ledger(self) -> Path:
        """The hub's ledger file."""
        return self.ledgers / HUB_LEDGER_FILE

    def silo_ledger(self, silo: str) -> Path:
        """The ledger file of ``silo``'s sidecar."""
        return self.ledgers / "silos" / f"{silo}.sqlite"


def _python_command(args: LaunchArgs) -> list[str]:
    # -v: the silo logs in the run directory record every round at INFO level.
    return [sys.executable, "-m", "fedsilo", "-v", *args.argv()]


class LocalRun:
    """One execution of a manifest on this machine."""

    def __init__(
        self,
        manifest: Manifest,
        options: RunOptions,
        observer: RoundObserver | None = None,
        hub_setup: HubSetup | None = None,
    ) -> None:
        self.manifest = manifest
        self.options = options
        #: Told of each round in this process, after the hub's process has moved on: an observer
        #: that must act between two rounds (before the next opens) is returned by ``hub_setup``.
        self.observer = observer
        #: Run in every hub process before its hub is built (fault tests install kill hooks there).
        self.hub_setup = hub_setup
        job = manifest.job.metadata.name
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self.workdir = options.workdir or Path("runs") / f"{job}-{stamp}"
        # What a resumed run takes over: above all the run id, so both ledgers see the same run.
        self.resumed: RunState | None = read_run_state(self.workdir) if options.resume else None
        # Names this run in the privacy ledgers: a rerun of the job is a new charge history.
        self.run_id = self.resumed.run_id if self.resumed else f"{stamp}-{secrets.token_hex(3)}"
        self.isolation: Isolation = detect_isolation(options.isolate)
        # A user factory beside the manifest must import here too: the hub builds round 0's
        # model and the baseline with it, as the trainers do.
        manifest_dir = str(options.manifest_path.resolve().parent)
        if manifest_dir not in sys.path:
            sys.path.insert(0, manifest_dir)
        self._processes: list[SiloProcesses] = []
        # A silo process that dies while the job runs ends it (``_children``).
        self._watch = ChildWatch()
        # Read once the hub process has served the statistics phase, for jobs with spec.data.preprocessing.
        self.statistics: StatisticsFiles | None = None
        self.preprocessing: FittedPreprocessing | None = None
        #: The port /metrics is served on while the job runs (``RunOptions.metrics_port``).
        self.metrics_port: int | None = None

    # ----- set-up --------------------------------------------------------------------

    def _identities(self, ca: CertificateAuthority) -> tuple[dict[str, Path], list[Silo]]:
        """Each silo's identity directory, and the Silo objects with their public keys."""
        directories: dict[str, Path] = {}
        silos: list[Silo] = []
        for silo in self.manifest.silos:
            name = silo.metadata.name
            registered = silo.spec.identity.public_key
            given = self.options.identity_dir / name if self.options.identity_dir else None
            # A resumed run keeps each silo's key: its ledger is signed with it and the hub knows it.
            if self.resumed is not None:
                given = self.workdir / "silos" / name / "identity"
            if given is not None and given.exists():
                key = read_identity(given).signing_key
            elif registered:
                raise ValueError(
                    f"Silo/{name}: spec.identity.publicKey is set but no private key for it was "
                    f"given; pass --identity-dir with a {name}/ folder from 'fedsilo identity create'"
                )
            else:
                key = SigningKey.generate()
            # The signing key is the silo's long-term identity; TLS material is per run,
            # issued by this run's CA so the aggregator can verify every client certificate.
            directory = self.workdir / "silos" / name / "identity"
            write_identity(directory, SiloIdentity(key, ca.issue(name, server=False)))
            public = key.public_key.to_base64()
            if registered and VerifyKey.from_base64(registered) != key.public_key:
                raise ValueError(f"Silo/{name}: the identity in {directory} does not match spec.identity.publicKey")
            directories[name] = directory
            document = silo.model_dump(by_alias=True)
            document["spec"]["identity"]["publicKey"] = public
            silos.append(Silo.model_validate(document))
        return directories, silos

    def sidecar_args(
        self, name: str, identity_dir: Path, aggregator: str, trainer_listen: str, job_config: Path
    ) -> SidecarArgs:
        """Silo ``name``'s sidecar command line: its ledger whenever the job charges it (as a silo pod's)."""
        spec = self.manifest.job.spec
        # The run's name (job/run-id) is the statistics phase's context at the hub and every silo.
        named = spec.charges_silos or (spec.data.preprocessing is not None and spec.data.preprocessing.federated)
        return SidecarArgs(
            job_config=job_config,
            silo=name,
            aggregator=aggregator,
            identity_dir=identity_dir,
            trainer_listen=trainer_listen,
            # The hub's audit key signs every global model; the run publishes its public half.
            aggregator_key=self.workdir / AGGREGATOR_PUBLIC_KEY,
            ledger=self.options.silo_ledger(name) if spec.charges_silos else None,
            run_id=self.run_id if named else "",
        )

    def _statistics_epsilon(self, files: StatisticsFiles) -> dict[str, float]:
        """What the hub's ledger charged each counted silo for a private statistics release; empty for exact ones."""
        if files.statistics.privacy is None:
            return {}
        with PrivacyLedger(self.options.hub_ledger(), read_only=True) as ledger:
            # The released document names the run its charges are under (job/run-id).
            return released_epsilon(ledger, files.statistics.job, files.statistics.silos)

    def _start_silo(self, index: int, name: str, identity_dir: Path, port: int, job_config: Path) -> SiloProcesses:
        silo_dir = self.workdir / "silos" / name
        silo_dir.mkdir(parents=True, exist_ok=True)
        # The link socket lives apart from the keys: the sandboxed trainer sees this directory only.
        link_dir = self.isolation.link_directory(self.workdir, name, index)
        socket_path = link_socket(self.workdir, name)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        manifest_dir = str(self.options.manifest_path.resolve().parent)
        # User model factories live beside their manifest, as in examples/custom_model.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (manifest_dir, env.get("PYTHONPATH", "")) if p)
        sidecar_args = self.sidecar_args(name, identity_dir, f"localhost:{port}", f"unix:{socket_path}", job_config)
        # The link's secret: only this silo's sidecar and trainer get it, in their environment.
        link_token = secrets.token_urlsafe(32)
        link_env = {LINK_TOKEN_ENV: link_token, PARENT_PID_ENV: str(os.getpid())}
        sidecar = subprocess.Popen(
            _python_command(sidecar_args),
            stdout=(silo_dir / "sidecar.log").open("wb"),
            stderr=subprocess.STDOUT,
            env=env | link_env,
        )
        trainer_env = {k: v for k, v in env.items() if not k.endswith("_PROXY") and not k.endswith("_proxy")}
        data = self.manifest.silo(name).spec.data.path
        readable = (job_config, *(Path(p) for p in env["PYTHONPATH"].split(os.pathsep) if p))
        trainer = subprocess.Popen(
            self.isolation.trainer_command(
                _python_command(
                    TrainerArgs(
                        job_config=job_config.resolve(),
                        silo=name,
                        sidecar=f"unix:{socket_path.resolve()}",
                    )
                ),
                index=index,
                run_dir=self.workdir,
                link_dir=link_dir,
                readable=(*readable, Path(data)) if data else readable,
            ),
            stdout=(silo_dir / "trainer.log").open("wb"),
            stderr=subprocess.STDOUT,
            env=trainer_env | link_env,
        )
        return SiloProcesses(name, sidecar, trainer, silo_dir, link_token)

    # ----- the run ---------------------------------------------------------------------

    def execute(
        self,
        on_started: Callable[[LocalRun], None] | None = None,
        on_baseline: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> RunReport:
        """Run the job to its end, then its baseline, plots and ``report.json``; the whole report.

        The report says whether the job finished or failed and why. A statistics-only job
        (``spec.rounds: 0``) ends with its statistics phase, served as for any job with federated
        preprocessing and taken part in by every silo's sidecar and trainer processes: its report
        has the statistics and no round, and no baseline or plot. ``on_started`` is called
        once every silo process runs; ``on_baseline`` wraps the baseline's training (a
        progress display), which takes a while.
        """
        report = self._run_job(on_started)
        if report.statistics_only:
            # No model was trained: no baseline to compare it with and no accuracy to plot.
            report.path.write_text(report.to_json())
            return report
        # A run ended by a dead process fails at once: no baseline to wait for.
        if self.options.baseline and self._watch.death is None:
            # Imported here, as the hub's model is (see _hub): the baseline trains with PyTorch,
            # which the operator and sidecar image leaves out.
            from fedsilo.baseline import train_centralized

            with on_baseline() if on_baseline is not None else contextlib.nullcontext():
                spec = self.manifest.job.spec
                own_files = {i: s.spec.data.path for i, s in enumerate(self.manifest.silos) if s.spec.data.path}
                baseline = train_centralized(spec, len(spec.silos), own_files, self.preprocessing)
            report.centralized_accuracy = baseline.accuracy
            report.centralized_loss = baseline.loss
        plot = self.options.plot or self.workdir / "accuracy.png"
        report.plot = str(write_plot(report, plot))
        if report.private:
            report.privacy_plot = str(write_privacy_plot(report, plot.with_name(plot.stem + "-epsilon.png")))
        report.path.write_text(report.to_json())
        return report

    def _run_job(self, on_started: Callable[[LocalRun], None] | None) -> RunReport:
        """The job itself: hub, silo processes, rounds; the report of its rounds."""
        spec = self.manifest.job.spec
        engine = EmbeddedRegoEngine()
        # Job admission first, as in a cluster: a refused job creates no run directory and no keys.
        decision = engine.decide_job(JobPolicyInput.from_job(self.manifest.job))
        if not decision.allow:
            raise ValueError(
                f"the job policy ({decision.policy_revision}) refuses FederatedJob/{self.manifest.job.metadata.name}; "
                f"nothing was created: {'; '.join(decision.reasons)}"
            )
        refused = consent_refusals(self.manifest.job, list(self.manifest.silos))
        if refused:
            # As the hub refuses it in a cluster: every silo it names must consent (spec.consent).
            raise ValueError(
                f"FederatedJob/{self.manifest.job.metadata.name} names a silo without its consent; nothing was "
                f"created: {'; '.join(r.message for r in refused)}"
            )
        if self.resumed is None and (self.workdir / CHECKPOINT_DIR).exists():
            raise ValueError(
                f"{self.workdir} already holds a run: resume it with 'fedsilo run --resume {self.workdir}', "
                "or choose another --workdir"
            )
        check_link_sockets(self.workdir, spec.silos)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        if self.resumed is None:
            write_run_state(
                self.workdir,
                RunState(
                    format="fedsilo.run/v1",
                    job=self.manifest.job.metadata.name,
                    run_id=self.run_id,
                    manifest=str(self.options.manifest_path.resolve()),
                    registry=str(self.options.registry.resolve()),
                    ledgers=str(self.options.ledgers.resolve()),
                    isolate=self.options.isolate,
                ),
            )
        # Kept in the run directory: a restarted hub presents a certificate the live sidecars trust.
        ca, server_tls = run_credentials(self.workdir)
        identity_dirs, silos = self._identities(ca)
        job_config = self.workdir / MANIFEST_FILE
        job_config.write_text(render_job_manifest(self.manifest.job, silos))
        # Chosen here so the silos start while the hub process starts (each takes a while under load);
        # the hub's signing key too, whose public half every sidecar reads as it starts. A job with
        # federated preprocessing has its statistics phase served there first, by the same process.
        port = free_port()
        aggregator_signing_key(self.workdir)
        hub = SupervisedHub(
            HubLaunch(
                manifest=self.manifest,
                silos=tuple(silos),
                manifest_path=self.options.manifest_path,
                workdir=self.workdir,
                registry=self.options.registry,
                ledgers=self.options.ledgers,
                hub_ledger=self.options.hub_ledger(),
                run_id=self.run_id,
                excluded=self.resumed.excluded if self.resumed else (),
                server_tls=server_tls,
                metrics_port=self._metrics_port(),
                parent_pid=os.getpid(),
                listen=f"localhost:{port}",
                resume_reason=f"fedsilo run --resume {self.workdir}" if self.resumed is not None else None,
                setup=self.hub_setup,
                log_level=logging.getLogger().getEffectiveLevel(),
            ),
            self.observer,
            self.options.max_hub_restarts,
            self._record_ports,
        )
        hub.start()
        report = RunReport(
            job=self.manifest.job.metadata.name,
            status="running",
            aggregation=spec.aggregation.mode.value,
            strategy=spec.strategy.name.value,
            isolation=self.isolation.description,
            workdir=str(self.workdir),
            ledgers=str(self.options.ledgers) if spec.charges_silos else None,
            statistics_only=spec.statistics_only,
        )
        try:
            if not self._processes:
                self._processes = [
                    self._start_silo(i, n, identity_dirs[n], port, job_config) for i, n in enumerate(spec.silos)
                ]
            hub.listening()
            self.metrics_port = hub.metrics_port
            if spec.data.preprocessing is not None and spec.data.preprocessing.federated:
                # Released by the hub process before it listened for training.
                self.statistics = read_statistics(self.workdir / STATISTICS_DIR)
                self.preprocessing = self.statistics.preprocessing
                report.statistics = str(self.statistics.json)
                report.statistics_epsilon = self._statistics_epsilon(self.statistics)
            if on_started is not None:
                on_started(self)
            self._watch.start(self._processes, lambda death: hub.abort(death.summary()))
            outcome = hub.wait()
            if outcome.succeeded:
                report.status = "succeeded"
            else:
                report.status = "failed"
                death = self._watch.death
                # The hub and the other silos are told which process died; the log's tail is for this report only.
                report.failure = (
                    death.report() if death is not None and outcome.failure == death.summary() else (outcome.failure)
                )
            self._watch.stop()
            # A hub that ended the job still serves: the silos learn that no round follows and exit.
            if self._watch.death is None and hub.serving():
                self._wait_for_silos()
        finally:
            self._watch.stop()
            self._stop_silos()
            hub.stop()
        report.hub_restarts = list(hub.restarts)
        summaries = outcome.summaries
        report.rounds = [RoundRow.of(s) for s in summaries]
        for row in report.rounds:
            for silo in row.denied:
                report.denials[silo] = report.denials.get(silo, 0) + 1
        return report

    def _metrics_port(self) -> int | None:
        """Where the first hub serves /metrics: a resumed run asked for any port takes the one it had."""
        asked = self.options.metrics_port
        if asked == 0 and self.resumed is not None and self.resumed.metrics_port is not None:
            return self.resumed.metrics_port
        return asked

    def _record_ports(self, port: int, metrics_port: int | None) -> None:
        """Keep the hub's ports in ``run.json``: a restarted hub listens on them again (sidecars, scrapers)."""
        state = read_run_state(self.workdir)
        if (state.hub_port, state.metrics_port) != (port, metrics_port):
            update = {"hub_port": port, "metrics_port": metrics_port}
            write_run_state(self.workdir, state.model_copy(update=update))

    def processes_of(self, name: str) -> SiloProcesses:
        """Silo ``name``'s sidecar and trainer processes (for fault tests); ``KeyError`` before they start."""
        for processes in self._processes:
            if processes.name == name:
                return processes
        raise KeyError(f"silo {name} has no processes in this run")

    def kill_silo(self, name: str) -> None:
        """Kill a silo's sidecar and trainer (for fault tests and demos): a dropout the run goes on without."""
        self._watch.release(name)
        processes = self.processes_of(name)
        processes.sidecar.kill()
        processes.trainer.kill()

    def stop_silo(self, name: str) -> None:
        """Ask a silo's sidecar and trainer to stop (SIGTERM, as a pod deletion does): the sidecar leaves at once."""
        self._watch.release(name)
        processes = self.processes_of(name)
        processes.sidecar.send_signal(signal.SIGTERM)
        processes.trainer.send_signal(signal.SIGTERM)

    def kill_trainer(self, name: str) -> None:
        """Kill a silo's trainer only, leaving its sidecar running (for fault tests): the silo sits out."""
        self._watch.release(name)
        self.processes_of(name).trainer.kill()

    def _wait_for_silos(self) -> None:
        deadline = time.monotonic() + EXIT_GRACE_SECONDS
        for processes in self._processes:
            for process in (processes.sidecar, processes.trainer):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(max(0.1, deadline - time.monotonic()))

    def _stop_silos(self) -> None:
        for processes in self._processes:
            for process in (processes.sidecar, processes.trainer):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
        for processes in self._processes:
            for process in (processes.sidecar, processes.trainer):
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
