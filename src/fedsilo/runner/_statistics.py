"""The hub's side of the statistics phase, and ``fedsilo stats``: one server, one way to write what it released.

``HubStatistics`` serves the phase (``fedsilo.aggregator.StatisticsService`` over a
``StatisticsPhase``) on its own mTLS gRPC server until it ends, ``write_statistics``
writes ``statistics.json``, ``histograms.png`` and ``preprocessing.json``, and
``statistics_status`` reads them back as the job status's ``statistics`` (in a cluster). Both the
aggregator process (``run_aggregator``, before round 1) and ``fedsilo run`` (``LocalRun``)
use them, with every silo taking part from its own sidecar process, which gets its totals
from its own trainer process over the trainer link: the records are read where they are.

``run_statistics`` (``fedsilo stats``, a standalone tool without trainers) serves the same
``HubStatistics`` and runs each silo's part (``fedsilo.sidecar.take_part``) in a thread of
this process with the silo's own certificate and identity, over the records it loads as
that silo's trainer would (``statistics_phase``); the silos and the hub share nothing but
the messages on the wire.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import threading
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from fedsilo.aggregator import (
    SiloTrust,
    StatisticsFailed,
    StatisticsPhase,
    StatisticsRelease,
    StatisticsService,
    serve,
)
from fedsilo.api import FederatedJob, FederatedJobSpec, Manifest, StatisticsStatus
from fedsilo.datasets import PREPROCESSING_FILE, FittedPreprocessing
from fedsilo.identity import CertificateAuthority, SigningKey, SiloIdentity, TlsCredentials, VerifyKey
from fedsilo.policy import PolicyGate
from fedsilo.privacy.ledger import PrivacyLedger
from fedsilo.protocol import rpc
from fedsilo.sidecar import silo_channel, take_part
from fedsilo.statistics import (
    PASSES,
    FederatedStatistics,
    SiloRecords,
    StatisticsError,
    StatisticsPlan,
    StatisticsSilo,
    job_silos,
    write_histograms,
)

from ._gate import build_gate
from ._hub import aggregator_signing_key

#: Where in a run's (or the aggregator's state) directory the phase writes its files.
STATISTICS_DIR = "statistics"
STATISTICS_FILE = "statistics.json"
HISTOGRAMS_FILE = "histograms.png"
#: The hub's ledger in a directory of privacy ledgers (``fedsilo run --ledgers``, ``fedsilo stats --ledgers``).
HUB_LEDGER_FILE = "hub.sqlite"
# How long each step of the phase waits for the silos (they are all up: a local phase).
STEP_SECONDS = 120.0
# How long a closing statistics server lets its last answers go out.
CLOSE_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class StatisticsFiles:
    """What a statistics phase released and where it wrote it."""

    statistics: FederatedStatistics
    preprocessing: FittedPreprocessing | None
    json: Path
    plot: Path
    preprocessing_path: Path | None


class HubStatistics:
    """The hub's side of one statistics phase, served on its own gRPC server with mutual TLS until it ends.

    Started on construction (``port`` is the bound port, for ``listen`` ending in ``:0``);
    ``join_seconds`` lets silo processes started with it (or pods) load their records first;
    ``release`` waits for the phase's end; ``close`` stops the server, after which the
    training service may take the same address (a sidecar's Join retries meanwhile).
    ``ledger`` is the hub's privacy ledger, charged for a private phase (``hub_ledger``).
    """

    def __init__(
        self,
        job: FederatedJob,
        run: str,
        keys: Mapping[str, VerifyKey],
        gate: PolicyGate,
        listen: str,
        credentials: TlsCredentials,
        *,
        trust: SiloTrust | None = None,
        ceilings: Mapping[str, float | None] | None = None,
        step_seconds: float = STEP_SECONDS,
        join_seconds: float | None = None,
        ledger: PrivacyLedger | None = None,
    ) -> None:
        self.phase = StatisticsPhase(
            job,
            run,
            keys,
            gate,
            step_seconds=step_seconds,
            silo_ceilings=ceilings or {},
            join_seconds=join_seconds,
            ledger=ledger,
        )
        self._step_seconds = step_seconds
        self._join_seconds = step_seconds if join_seconds is None else join_seconds
        self._server, self.port = serve(
            StatisticsService(self.phase, trust), listen, credentials, workers=4 * len(keys) + 4, trust=trust
        )

    @property
    def longest_seconds(self) -> float:
        """The phase's longest life: the join, then two passes of four steps each."""
        return self._join_seconds + 4 * len(PASSES) * self._step_seconds

    def release(self) -> StatisticsRelease:
        """Wait for the phase to end; what it released.

        Raises:
            StatisticsError: too few silos took part (the message names them and why), or
                the phase failed or did not end within its steps' deadlines.
        """
        try:
            return self.phase.result(timeout=self.longest_seconds)
        except StatisticsFailed as error:
            raise StatisticsError(str(error)) from error

    def close(self) -> None:
        """Stop serving, letting the last answers (the phase's end, to every silo) go out first."""
        self._server.stop(grace=CLOSE_GRACE_SECONDS).wait()

    def __enter__(self) -> HubStatistics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_statistics(release: StatisticsRelease, out: Path) -> StatisticsFiles:
    """Write what a phase released into ``out``: ``statistics.json``, ``histograms.png``, ``preprocessing.json``."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / STATISTICS_FILE
    json_path.write_bytes(release.statistics.canonical_bytes())
    plot = write_histograms(release.statistics, out / HISTOGRAMS_FILE)
    # The transform the hub fitted from the totals alone (``StatisticsPhase``), not refitted here.
    fitted = release.preprocessing
    # Written last and renamed into place: a process killed meanwhile leaves no half transform that
    # its restart would take for a finished phase.
    fitted_path = (
        fitted.write(out / f"{PREPROCESSING_FILE}.partial").replace(out / PREPROCESSING_FILE)
        if fitted is not None
        else None
    )
    return StatisticsFiles(release.statistics, fitted, json_path, plot, fitted_path)


def read_statistics(out: Path) -> StatisticsFiles:
    """What ``write_statistics`` wrote into ``out``, read back strictly (a run whose hub process wrote it).

    Raises:
        OSError: ``statistics.json`` is missing or unreadable.
        ValueError: a file is not a valid statistics or preprocessing document.
    """
    statistics = FederatedStatistics.parse((out / STATISTICS_FILE).read_bytes())
    fitted_path = out / PREPROCESSING_FILE
    fitted = FittedPreprocessing.read(fitted_path) if fitted_path.is_file() else None
    return StatisticsFiles(
        statistics, fitted, out / STATISTICS_FILE, out / HISTOGRAMS_FILE, fitted_path if fitted is not None else None
    )


def statistics_status(out: Path) -> StatisticsStatus:
    """The job status's view of the phase whose files ``write_statistics`` put in ``out``: who, what width, which transform.

    Read back from the files, not kept from the phase: a restarted aggregator publishes the
    same status again (its reporter starts empty, and a status field left out of the
    reporter's next apply would be removed). No count or value of any feature goes in.

    Raises:
        OSError: a file is missing or unreadable.
        ValueError: a file is not a valid statistics or preprocessing document.
    """
    statistics = FederatedStatistics.parse((out / STATISTICS_FILE).read_bytes())
    fitted = FittedPreprocessing.read(out / PREPROCESSING_FILE)
    released = dt.datetime.fromtimestamp((out / PREPROCESSING_FILE).stat().st_mtime, dt.UTC)
    return StatisticsStatus(
        released_at=released.strftime("%Y-%m-%dT%H:%M:%SZ"),
        silos=list(statistics.silos),
        excluded={e.silo: e.reason for e in statistics.excluded} or None,
        features=fitted.num_features,
        categorical=len(fitted.categorical),
        transformed_features=fitted.output_features,
        scaling=fitted.scaling.value,
        epsilon=statistics.privacy.epsilon if statistics.privacy is not None else None,
        statistics_digest=statistics.digest(),
        preprocessing_digest=fitted.digest(),
    )


def run_statistics(
    run: str,
    spec: FederatedJobSpec,
    silos: Sequence[SiloRecords],
    *,
    ca: CertificateAuthority | None = None,
    tls: Mapping[str, TlsCredentials] | None = None,
    gate: PolicyGate | None = None,
    rng: np.random.Generator | None = None,
    step_seconds: float = STEP_SECONDS,
    hub_ledger: PrivacyLedger | None = None,
) -> StatisticsRelease:
    """Serve the phase over mTLS gRPC on loopback and run every silo's part against it; the released statistics.

    ``run`` names the run (``job`` or ``job/run-id``: the ledgers' job name, the secure
    aggregation's context). ``ca`` issues the hub's certificate and, for silos missing from
    ``tls``, theirs (a fresh CA when None). ``gate`` decides and records every upload (an
    embedded policy and a throwaway audit log when None). ``rng`` seeds the DP noise in tests.
    ``hub_ledger``: the hub's privacy ledger, charged for every silo whose noised totals it admits.

    Raises:
        DataError: the records do not fit the settings (the message names the field).
        StatisticsError: too few silos take part for secure aggregation (the message names
            them and why), or the phase failed.
    """
    job = FederatedJob.model_validate(
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "FederatedJob",
            "metadata": {"name": run.split("/")[0]},
            "spec": spec.model_dump(by_alias=True, exclude_none=True),
        }
    )
    widths = {s.name: int(np.prod(s.records.shape[1:])) for s in silos}
    members = []
    with ExitStack() as stack:
        if gate is None:
            state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fedsilo-stats-")))
            gate = build_gate(state, aggregator_signing_key(state))
            stack.callback(gate.audit.close)
        authority = ca or CertificateAuthority.create()
        credentials = dict(tls or {})
        for record in silos:
            credentials.setdefault(record.name, authority.issue(record.name, server=False))
        peer_keys = {s.name: s.signing_key.public_key for s in silos}
        server_tls = authority.issue("aggregator", server=True, dns_names=("localhost",), ip_addresses=("127.0.0.1",))
        hub = stack.enter_context(
            HubStatistics(
                job,
                run,
                peer_keys,
                gate,
                "127.0.0.1:0",
                server_tls,
                ceilings={s.name: s.max_epsilon for s in silos},
                step_seconds=step_seconds,
                ledger=hub_ledger,
            )
        )
        noise = rng.spawn(len(silos)) if rng is not None else [None] * len(silos)
        for record, generator in zip(silos, noise, strict=True):
            ledger = None
            if record.ledger is not None and _private(spec):
                ledger = stack.enter_context(PrivacyLedger(record.ledger))
            plan = StatisticsPlan.for_job(run, spec, widths[record.name])
            members.append(
                StatisticsSilo(
                    plan,
                    record.name,
                    record.records,
                    record.signing_key,
                    ledger=ledger,
                    max_epsilon=record.max_epsilon,
                    job_ceiling=spec.policy.max_epsilon,
                    rng=generator,
                )
            )
        # What went wrong in a silo's own part, told with the hub's failure.
        problems: dict[str, str] = {}

        def silo_part(member: StatisticsSilo, identity: SiloIdentity) -> None:
            try:
                with silo_channel(f"localhost:{hub.port}", identity, None) as channel:
                    last = take_part(
                        rpc.AggregatorStub(channel), member, identity.signing_key, peer_keys, timeout=4 * step_seconds
                    )
                if last.failure:
                    problems[member.name] = last.failure
            except grpc.RpcError as error:
                problems[member.name] = f"{error.code().name}: {error.details()}"
            except ValueError as error:  # a malformed message from the hub, a SecAggError
                problems[member.name] = str(error)

        threads = [
            threading.Thread(
                target=silo_part,
                args=(member, SiloIdentity(record.signing_key, credentials[record.name])),
                name=f"statistics-{record.name}",
                daemon=True,
            )
            for member, record in zip(members, silos, strict=True)
        ]
        for thread in threads:
            thread.start()
        try:
            return hub.release()
        finally:
            for thread in threads:
                thread.join(timeout=step_seconds)


def statistics_phase(manifest: Manifest, out: Path, *, run_name: str, ledgers: Path | None = None) -> StatisticsFiles:
    """``fedsilo stats``: the phase with fresh silo identities; the three files and the audit log go into ``out``.

    ``ledgers`` is the directory of the privacy ledgers, the silos' (``silos/<name>.sqlite``)
    and the hub's (``hub.sqlite``, signed with the key beside it), as ``fedsilo run`` keeps them;
    charged when ``spec.data.preprocessing.epsilon`` is set.

    Raises:
        DataError: the settings do not fit the data (the message names the field or file).
        StatisticsError: too few silos could take part (the message names them and why).
    """
    spec = manifest.job.spec
    keys = {name: SigningKey.generate() for name in spec.silos}
    private = _private(spec)
    silos = job_silos(
        spec,
        keys,
        own_files={s.metadata.name: s.spec.data.path for s in manifest.silos if s.spec.data.path},
        ledgers={name: ledgers / "silos" / f"{name}.sqlite" for name in spec.silos} if private and ledgers else None,
        ceilings={s.metadata.name: s.spec.max_epsilon for s in manifest.silos},
    )
    out.mkdir(parents=True, exist_ok=True)
    gate = build_gate(out, aggregator_signing_key(out))
    with ExitStack() as stack:
        stack.callback(gate.audit.close)
        hub = open_hub_ledger(spec, ledgers / HUB_LEDGER_FILE, ledgers) if ledgers is not None else None
        if hub is not None:
            stack.callback(hub.close)
        outcome = run_statistics(run_name, spec, silos, gate=gate, hub_ledger=hub)
    return write_statistics(outcome, out)


def _private(spec: FederatedJobSpec) -> bool:
    """Whether the job's statistics carry DP noise, charged to the ledgers (``StatisticsPlan.private``)."""
    return spec.data.preprocessing is not None and spec.data.preprocessing.epsilon is not None


def open_hub_ledger(spec: FederatedJobSpec, path: Path, key_dir: Path) -> PrivacyLedger | None:
    """The hub's ledger at ``path`` for a job whose statistics are private, signed with the hub key in ``key_dir``.

    None for exact statistics: they charge nothing, and no ledger is created for them.
    """
    return PrivacyLedger(path, aggregator_signing_key(key_dir)) if _private(spec) else None
