"""The aggregator process (``fedsilo aggregator``, what the operator runs) serves the statistics phase
before round 1 on its own address with its OPA server deciding, writes what it released into its state
directory beside the audit log, and a restarted aggregator that finds the transform there does not run
the phase again."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import grpc
import pytest
import yaml

from fedsilo.api import StatisticsStatus, parse_manifest
from fedsilo.audit import verify_audit_log
from fedsilo.datasets import FittedPreprocessing, load_raw_silo_data
from fedsilo.identity import CertificateAuthority, SigningKey, SiloIdentity
from fedsilo.launch import REGISTRY_DIR, AggregatorArgs
from fedsilo.policy import OpaServerEngine
from fedsilo.protocol import rpc
from fedsilo.registry import preprocessing_path
from fedsilo.runner import AUDIT_LOG, aggregator_signing_key
from fedsilo.runner._aggregator import STATISTICS_DIR, _report_statistics, _statistics_phase
from fedsilo.runner._statistics import statistics_status
from fedsilo.sidecar import silo_channel, take_part
from fedsilo.statistics import StatisticsPlan, StatisticsSilo
from fedsilo_testing import OpaServer

SILOS = ["bank-a", "bank-b", "bank-c"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_aggregator_serves_the_phase_and_a_restart_keeps_its_transform(
    tmp_path: Path, opa_server: OpaServer
) -> None:
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
            "data": {
                "source": "tabular",
                "tabular": {"recordsPerSilo": 300},
                "preprocessing": {"scaling": "standardize", "categorical": [12]},
            },
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
    issuers = {name: ca.certificate_pem for name in SILOS}
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

    def serve() -> None:
        with OpaServerEngine(opa_server.url) as engine:
            outcome["fitted"] = _statistics_phase(args, manifest, server_tls, issuers, engine)

    hub = threading.Thread(target=serve, daemon=True)
    hub.start()
    steps = {}
    for index, name in enumerate(SILOS):
        records = load_raw_silo_data(spec, index, len(SILOS)).train_x
        member = StatisticsSilo(StatisticsPlan.for_job(run, spec, records.shape[1]), name, records, keys[name])
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
    fitted = outcome["fitted"]
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
        again = _statistics_phase(args, manifest, server_tls, issuers, engine)
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
