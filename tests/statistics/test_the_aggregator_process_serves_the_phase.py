"""The aggregator process (``fedsilo aggregator``, what the operator runs) serves the statistics phase
before round 1 on its own address with its OPA server deciding, writes what it released into its state
directory beside the audit log, and a restarted aggregator that finds the transform there does not run
the phase again."""

from __future__ import annotations

import socket
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from fedsilo.aggregator import SiloTrust
from fedsilo.api import Manifest, StatisticsStatus, parse_manifest
from fedsilo.audit import verify_audit_log
from fedsilo.datasets import FittedPreprocessing, load_raw_silo_data
from fedsilo.identity import CertificateAuthority, SigningKey, SiloIdentity, TlsCredentials
from fedsilo.launch import PRIVACY_LEDGER_FILE, REGISTRY_DIR, AggregatorArgs
from fedsilo.policy import OpaServerEngine
from fedsilo.privacy.ledger import PrivacyLedger, compare_ledgers, verify_ledger
from fedsilo.protocol import StatisticsStep, rpc
from fedsilo.registry import preprocessing_path
from fedsilo.runner import AUDIT_LOG, aggregator_signing_key
from fedsilo.runner._aggregator import STATISTICS_DIR, _privacy_book, _report_statistics, _statistics_phase
from fedsilo.runner._statistics import statistics_status
from fedsilo.sidecar import silo_channel, take_part
from fedsilo.statistics import StatisticsPlan, StatisticsSilo
from fedsilo_testing import OpaServer

SILOS = ["bank-a", "bank-b", "bank-c"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    """One statistics phase the aggregator process served, and what each silo's part heard."""

    manifest: Manifest
    args: AggregatorArgs
    server_tls: TlsCredentials
    trust: SiloTrust
    fitted: FittedPreprocessing | None
    steps: dict[str, StatisticsStep]


def _serve_phase(
    tmp_path: Path,
    opa_server: OpaServer,
    preprocessing: dict[str, Any],
    ledgers: Path | None = None,
    records: int = 300,
) -> Served:
    """Serve the phase of a three-silo job from ``_statistics_phase`` and take part from each silo (``ledgers``: theirs)."""
    keys = {name: SigningKey.generate() for name in SILOS}
    job = {
        "apiVersion": "fedsilo.io/v1alpha1",
        "kind": "FederatedJob",
        "metadata": {"name": "hub"},
        "spec": {
            "silos": SILOS,
            "minSilos": 2,
            "rounds": 1,
            "roundTimeoutSeconds": 120,
            "model": {"builtin": "logistic_regression"},
            "data": {"source": "tabular", "tabular": {"recordsPerSilo": records}, "preprocessing": preprocessing},
        },
    }
    silos = [
        {
            "apiVersion": "fedsilo.io/v1alpha1",
            "kind": "Silo",
            "metadata": {"name": name},
            "spec": {"identity": {"publicKey": key.public_key.to_base64()}},
        }
        for name, key in keys.items()
    ]
    manifest = parse_manifest(yaml.safe_dump_all([job, *silos]))
    spec = manifest.job.spec
    ca = CertificateAuthority.create()
    server_tls = ca.issue("aggregator", server=True, dns_names=("localhost",), ip_addresses=("127.0.0.1",))
    trust = SiloTrust({name: ca.certificate_pem for name in SILOS})
    state = tmp_path / "state"
    port = _free_port()
    args = AggregatorArgs(
        job_config=tmp_path / "job.yaml",
        listen=f"127.0.0.1:{port}",
        tls_dir=tmp_path / "tls",
        state_dir=state,
        policy_url=opa_server.url,
    )
    # Outside a cluster the run id is "standalone", as in the aggregator's ledger.
    run = "hub/standalone"
    peers = {name: key.public_key for name, key in keys.items()}
    outcome: dict[str, FittedPreprocessing | None] = {}
    silo_ledgers = ExitStack()

    def serve() -> None:
        with OpaServerEngine(opa_server.url) as engine:
            outcome["fitted"] = _statistics_phase(args, manifest, server_tls, trust, engine)

    hub = threading.Thread(target=serve, daemon=True)
    hub.start()
    steps: dict[str, StatisticsStep] = {}
    for index, name in enumerate(SILOS):
        records = load_raw_silo_data(spec, index, len(SILOS)).train_x
        ledger = silo_ledgers.enter_context(PrivacyLedger(ledgers / f"{name}.sqlite")) if ledgers else None
        plan = StatisticsPlan.for_job(run, spec, records.shape[1])
        member = StatisticsSilo(plan, name, records, keys[name], ledger=ledger)
        identity = SiloIdentity(keys[name], ca.issue(name, server=False))

        def part(member: StatisticsSilo = member, identity: SiloIdentity = identity) -> None:
            with silo_channel(f"localhost:{port}", identity, None) as channel:
                # A silo dialling before the hub listens waits for it, as a sidecar does.
                grpc.channel_ready_future(channel).result(timeout=120)
                steps[member.name] = take_part(
                    rpc.AggregatorStub(channel), member, identity.signing_key, peers, timeout=120.0
                )

        threading.Thread(target=part, daemon=True).start()
    hub.join(timeout=600)
    silo_ledgers.close()
    return Served(manifest, args, server_tls, trust, outcome["fitted"], steps)


def test_the_aggregator_serves_the_phase_and_a_restart_keeps_its_transform(
    tmp_path: Path, opa_server: OpaServer
) -> None:
    served = _serve_phase(tmp_path, opa_server, {"scaling": "standardize", "categorical": [12]})
    manifest, args, server_tls, trust, steps = (
        served.manifest,
        served.args,
        served.server_tls,
        served.trust,
        served.steps,
    )
    state = args.state_dir
    fitted = served.fitted
    assert fitted is not None
    out = state / STATISTICS_DIR
    assert FittedPreprocessing.read(out / "preprocessing.json").digest() == fitted.digest()
    assert (out / "statistics.json").is_file() and (out / "histograms.png").is_file()
    assert {step.preprocessing_digest for step in steps.values()} == {fitted.digest()}
    # Recorded in the hub's own audit log, signed with its key.
    verify_audit_log(state / AUDIT_LOG, aggregator_signing_key(state).public_key)
    audit = (state / AUDIT_LOG).read_text()
    assert '"operation":"statistics"' in audit.replace(" ", "") and fitted.digest() in audit

    # Kept in the job's registry by its digest, where every round's lineage (and models verify) finds it.
    kept = preprocessing_path(state / REGISTRY_DIR / "hub", fitted.digest())
    assert kept.read_bytes() == fitted.canonical_bytes()

    # A restarted aggregator is past the phase: it takes the transform it wrote, serving nothing,
    # and keeps it in the registry again if the registry lost it.
    kept.unlink()
    with OpaServerEngine(opa_server.url) as engine:
        again = _statistics_phase(args, manifest, server_tls, trust, engine)
    assert again is not None and again.digest() == fitted.digest()
    assert kept.read_bytes() == fitted.canonical_bytes()

    # What the job's status shows in a cluster, read back from the state directory: the same after the restart.
    published = statistics_status(out)
    assert published.silos == SILOS and published.excluded is None and published.epsilon is None
    assert (published.preprocessing_digest, published.statistics_digest) == (fitted.digest(), fitted.statistics_digest)
    assert (published.features, published.categorical, published.transformed_features) == (
        fitted.num_features,
        1,
        fitted.output_features,
    )
    reporter = Releases()
    _report_statistics(reporter, out)
    assert reporter.released == [published]


class Releases:
    """The reporter's one method the phase calls, recording what it was given."""

    def __init__(self) -> None:
        self.released: list[StatisticsStatus] = []

    def statistics_released(self, statistics: StatisticsStatus) -> None:
        self.released.append(statistics)


def test_a_release_that_cannot_be_read_back_is_logged_and_the_job_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "statistics.json").write_text('{"format": "fedsilo.statistics/v1", "silos": "all"}')
    (tmp_path / "preprocessing.json").write_text("{}")
    with pytest.raises(ValueError, match="silos"):
        statistics_status(tmp_path)
    reporter = Releases()
    _report_statistics(reporter, tmp_path)
    assert reporter.released == []
    assert "the statistics phase's release is not in the job's status" in caplog.text


def test_a_private_phase_charges_the_aggregators_ledger_and_its_status_shows_the_charges(
    tmp_path: Path, opa_server: OpaServer
) -> None:
    # Training without DP: the statistics alone charge, and the job's book exists for them.
    ledgers = tmp_path / "silo-ledgers"
    # Enough records that the noised histograms still give every feature's mean.
    served = _serve_phase(tmp_path, opa_server, {"scaling": "standardize", "epsilon": 1.0}, ledgers, records=1500)
    assert served.manifest.job.spec.privacy.mode.value == "none" and served.fitted is not None
    state = served.args.state_dir
    verify_ledger(state / PRIVACY_LEDGER_FILE, aggregator_signing_key(state).public_key)
    book = _privacy_book(served.manifest, state, 1)
    assert book is not None
    try:
        reporter = Releases()
        _report_statistics(reporter, state / STATISTICS_DIR, book)
        (published,) = reporter.released
        spent = book.spent()
    finally:
        book.close()
    assert published.epsilon == 1.0 and published.epsilon_spent == spent and set(spent) == set(SILOS)
    with PrivacyLedger(state / PRIVACY_LEDGER_FILE, read_only=True) as hub:
        for silo in SILOS:
            with PrivacyLedger(ledgers / f"{silo}.sqlite", read_only=True) as own:
                (mine,) = own.history(silo)
                assert compare_ledgers(hub, own, silo).agree
            assert spent[silo] == mine.epsilon_job
