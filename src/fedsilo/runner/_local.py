"""``fedsilo run``: a whole federated job on one machine, with the manifests a cluster takes.

The aggregator runs in this process behind a real mutual-TLS gRPC server on loopback;
every silo gets a sidecar process (its only network path) and a trainer process that
reaches only its sidecar, over a Unix socket, from its own network namespace where the
OS allows one. An ephemeral CA and every key are created per run inside the run
directory (mode 0700); nothing listens in plaintext.
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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from fedsilo.aggregator import JobFailed, LedgerBook, RoundObserver, start_server
from fedsilo.api import Manifest, PrivacyMode, Silo
from fedsilo.identity import (
    CertificateAuthority,
    SigningKey,
    SiloIdentity,
    VerifyKey,
    read_identity,
    write_identity,
)
from fedsilo.policy import EmbeddedRegoEngine, JobPolicyInput
from fedsilo.registry import LocalRegistry

from ._hub import build_hub
from ._isolation import Isolation, detect_isolation
from ._report import RoundRow, RunReport

log = logging.getLogger("fedsilo.run")

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
    baseline: bool = True
    # Privacy ledgers (DP jobs only): the hub's and one per silo, kept across runs so a
    # silo's lifetime ceiling counts every job it took part in.
    ledgers: Path = Path("runs/privacy")

    def hub_ledger(self) -> Path:
        """The hub's ledger file."""
        return self.ledgers / "hub.sqlite"

    def silo_ledger(self, silo: str) -> Path:
        """The ledger file of ``silo``'s sidecar."""
        return self.ledgers / "silos" / f"{silo}.sqlite"


@dataclass
class _SiloProcesses:
    name: str
    sidecar: subprocess.Popen[bytes]
    trainer: subprocess.Popen[bytes]


def _python_command(*args: str) -> list[str]:
    # -v: the silo logs in the run directory record every round at INFO level.
    return [sys.executable, "-m", "fedsilo", "-v", *args]


def _manifest_documents(manifest: Manifest, silos: list[Silo]) -> list[dict[str, object]]:
    docs: list[dict[str, object]] = [manifest.job.model_dump(mode="json", by_alias=True, exclude_none=True)]
    docs += [s.model_dump(mode="json", by_alias=True, exclude_none=True) for s in silos]
    return docs


class LocalRun:
    """One execution of a manifest on this machine."""

    def __init__(self, manifest: Manifest, options: RunOptions, observer: RoundObserver | None = None) -> None:
        self.manifest = manifest
        self.options = options
        self.observer = observer
        job = manifest.job.metadata.name
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self.workdir = options.workdir or Path("runs") / f"{job}-{stamp}"
        # Names this run in the privacy ledgers: a rerun of the job is a new charge history.
        self.run_id = f"{stamp}-{secrets.token_hex(3)}"
        self.isolation: Isolation = detect_isolation(options.isolate)
        # A user factory beside the manifest must import here too: the hub builds round 0's
        # model and the baseline with it, as the trainers do.
        manifest_dir = str(options.manifest_path.resolve().parent)
        if manifest_dir not in sys.path:
            sys.path.insert(0, manifest_dir)
        self._processes: list[_SiloProcesses] = []

    # ----- set-up --------------------------------------------------------------------

    def _identities(self, ca: CertificateAuthority) -> tuple[dict[str, Path], list[Silo]]:
        """Each silo's identity directory, and the Silo objects with their public keys."""
        directories: dict[str, Path] = {}
        silos: list[Silo] = []
        for silo in self.manifest.silos:
            name = silo.metadata.name
            registered = silo.spec.identity.public_key
            given = self.options.identity_dir / name if self.options.identity_dir else None
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

    def _privacy_args(self, name: str) -> list[str]:
        if self.manifest.job.spec.privacy.mode is PrivacyMode.NONE:
            return []
        return ["--ledger", str(self.options.silo_ledger(name)), "--run-id", self.run_id]

    def _start_silo(self, name: str, identity_dir: Path, port: int, job_config: Path) -> _SiloProcesses:
        silo_dir = self.workdir / "silos" / name
        silo_dir.mkdir(parents=True, exist_ok=True)
        socket_path = silo_dir / "trainer.sock"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        manifest_dir = str(self.options.manifest_path.resolve().parent)
        # User model factories live beside their manifest, as in examples/custom_model.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (manifest_dir, env.get("PYTHONPATH", "")) if p)
        sidecar = subprocess.Popen(
            _python_command(
                "sidecar",
                "--job-config",
                str(job_config),
                "--silo",
                name,
                "--aggregator",
                f"localhost:{port}",
                "--identity-dir",
                str(identity_dir),
                "--trainer-listen",
                f"unix:{socket_path}",
                *self._privacy_args(name),
            ),
            stdout=(silo_dir / "sidecar.log").open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        trainer_env = {k: v for k, v in env.items() if not k.endswith("_PROXY") and not k.endswith("_proxy")}
        trainer = subprocess.Popen(
            [
                *self.isolation.prefix,
                *_python_command(
                    "trainer", "--job-config", str(job_config), "--silo", name, "--sidecar", f"unix:{socket_path}"
                ),
            ],
            stdout=(silo_dir / "trainer.log").open("wb"),
            stderr=subprocess.STDOUT,
            env=trainer_env,
        )
        return _SiloProcesses(name, sidecar, trainer)

    # ----- the run ---------------------------------------------------------------------

    def execute(self, on_started: Callable[[LocalRun], None] | None = None) -> RunReport:
        """Run the job to its end; the report says whether it finished or failed and why."""
        spec = self.manifest.job.spec
        engine = EmbeddedRegoEngine()
        # Job admission first, as in a cluster: a refused job creates no run directory and no keys.
        decision = engine.decide_job(JobPolicyInput.from_job(self.manifest.job))
        if not decision.allow:
            raise ValueError(
                f"the job policy ({decision.policy_revision}) refuses FederatedJob/{self.manifest.job.metadata.name}; "
                f"nothing was created: {'; '.join(decision.reasons)}"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        ca = CertificateAuthority.create()
        server_tls = ca.issue("aggregator", server=True, dns_names=("localhost",), ip_addresses=("127.0.0.1",))
        identity_dirs, silos = self._identities(ca)
        job_config = self.workdir / "job.yaml"
        job_config.write_text(yaml.safe_dump_all(_manifest_documents(self.manifest, silos), sort_keys=False))

        privacy = LedgerBook.for_job(self.manifest.job, self.options.hub_ledger(), self.run_id)
        hub = build_hub(
            self.manifest.job,
            silos,
            state_dir=self.workdir,
            engine=engine,
            registry=LocalRegistry(self.options.registry),
            observer=self.observer,
            privacy=privacy,
        )
        coordinator = hub.coordinator
        server, port = start_server(coordinator, "localhost:0", server_tls)
        report = RunReport(
            job=self.manifest.job.metadata.name,
            status="running",
            aggregation=spec.aggregation.mode.value,
            strategy=spec.strategy.name.value,
            isolation=self.isolation.description,
            workdir=str(self.workdir),
            ledgers=str(self.options.ledgers) if spec.privacy.mode is not PrivacyMode.NONE else None,
        )
        try:
            self._processes = [self._start_silo(n, identity_dirs[n], port, job_config) for n in spec.silos]
            if on_started is not None:
                on_started(self)
            watcher = threading.Thread(target=self._watch, daemon=True)
            watcher.start()
            try:
                coordinator.run()
                report.status = "succeeded"
            except JobFailed as error:
                report.status = "failed"
                report.failure = str(error)
            self._wait_for_silos()
        finally:
            self._stop_silos()
            server.stop(grace=2).wait()
            hub.close()
            if privacy is not None:
                privacy.close()
        report.rounds = [RoundRow.of(s) for s in coordinator.summaries]
        for row in report.rounds:
            for silo in row.denied:
                report.denials[silo] = report.denials.get(silo, 0) + 1
        return report

    def kill_silo(self, name: str) -> None:
        """Kill a silo's sidecar and trainer (for fault tests and demos)."""
        for processes in self._processes:
            if processes.name == name:
                processes.sidecar.kill()
                processes.trainer.kill()

    def _watch(self) -> None:
        """Log silo processes that die early; the aggregator's timeouts do the rest."""
        reported: set[int] = set()
        while any(p.sidecar.poll() is None for p in self._processes):
            for processes in self._processes:
                for role, process in (("sidecar", processes.sidecar), ("trainer", processes.trainer)):
                    code = process.poll()
                    if code not in (None, 0) and process.pid not in reported:
                        reported.add(process.pid)
                        log.warning(
                            "%s of %s exited with code %s (log: %s)",
                            role,
                            processes.name,
                            code,
                            self.workdir / "silos" / processes.name / f"{role}.log",
                        )
            time.sleep(0.5)

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
