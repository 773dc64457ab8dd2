"""A statistics-only job (``spec.rounds: 0``) ends when its statistics are released, in every process.

The aggregator process (``fedsilo aggregator`` with the operator's own container arguments and
mounts, ``tests/cli/test_cluster_commands.py``) serves the phase to real sidecars and trainers
over mutual TLS, its OPA server deciding every upload, then records the outcome and exits 0
without opening a round; each sidecar and trainer exits 0 after the phase. The private release
charged each silo's ledger and the hub's the same row, once, and a restarted aggregator finds the
outcome and runs nothing again. ``fedsilo run`` takes a statistics-only manifest through the same
phase with its own silo processes and reports that no round was trained.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsilo.api import FederatedJob, Silo
from fedsilo.audit import read_decisions
from fedsilo.cli import main
from fedsilo.datasets import FittedPreprocessing
from fedsilo.launch import PRIVACY_LEDGER_FILE, REGISTRY_DIR
from fedsilo.privacy.ledger import PrivacyLedger, compare_ledgers, run_name
from fedsilo.registry import LocalRegistry
from fedsilo.runner import AUDIT_LOG
from fedsilo.runner._aggregator import STATISTICS_ONLY_OUTCOME
from fedsilo.statistics import STATISTICS_ROUND
from fedsilo_testing import ControlPlane, OpaServer, install_crds
from tests.cli.test_cluster_commands import HubPod, fedsilo, hub_pod, tiny_job, unique, wait_for
from tests.operator.conftest import service_account_kubeconfig

TABULAR = Path(__file__).parents[2] / "examples" / "tabular.yaml"
#: The statistics of the generated tabular records, private: the phase is the whole job.
PREPROCESSING: dict[str, Any] = {"scaling": "standardize", "categorical": [12], "epsilon": 1.0}


def statistics_only_job() -> tuple[FederatedJob, list[Silo]]:
    """Two silos of the quickstart, turned into a statistics-only job over tabular records."""
    job, silos = tiny_job("masked")
    document = job.model_dump(by_alias=True, exclude_none=True)
    document["spec"].update(
        rounds=0,
        model={"builtin": "logistic_regression"},
        data={"source": "tabular", "tabular": {"recordsPerSilo": 1500}, "preprocessing": PREPROCESSING},
    )
    return FederatedJob.model_validate(document), silos


def start_silos(pod: HubPod, run_id: str, ledgers: Path) -> list[tuple[str, subprocess.Popen[bytes]]]:
    """Each silo's sidecar (with its ledger, as the silo operator mounts it) and trainer; every process started."""
    started = []
    for silo in pod.job.spec.silos:
        sidecar, trainer = pod.silo_args(silo)
        sidecar = dataclasses.replace(sidecar, ledger=ledgers / f"{silo}.sqlite", run_id=run_id)
        started.append((f"{silo}-sidecar", pod.start(f"{silo}-sidecar", fedsilo("-v", *sidecar.argv()))))
        started.append((f"{silo}-trainer", pod.start(f"{silo}-trainer", fedsilo("-v", *trainer.argv()))))
    return started


def assert_released_once_and_trained_nothing(pod: HubPod, run_id: str, ledgers: Path) -> None:
    """The phase's files, one agreeing charge per silo in both ledgers, a verified audit log, and no round."""
    state, job = pod.state_dir, pod.job.metadata.name
    out = state / "statistics"
    fitted = FittedPreprocessing.read(out / "preprocessing.json")
    assert (out / "statistics.json").is_file() and (out / "histograms.png").is_file()
    with PrivacyLedger(state / PRIVACY_LEDGER_FILE, read_only=True) as hub:
        for silo in pod.job.spec.silos:
            with PrivacyLedger(ledgers / f"{silo}.sqlite", read_only=True) as own:
                (mine,) = own.history(silo)
                assert compare_ledgers(hub, own, silo).agree
            (theirs,) = hub.history(silo)
            assert (mine.job, mine.round) == (theirs.job, theirs.round) == (run_name(job, run_id), STATISTICS_ROUND)
            assert theirs.acknowledged_at is not None
    verified = subprocess.run(
        fedsilo("audit", "verify", str(state / AUDIT_LOG), "--key", str(state / "aggregator-key.pub")),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0 and verified.stdout.startswith("OK:"), verified.stdout + verified.stderr
    audit = (state / AUDIT_LOG).read_text()
    assert '"operation":"statistics"' in audit.replace(" ", "") and fitted.digest() in audit
    # Two passes of one upload per silo, all of the statistics phase: no update of a round was decided.
    decisions = read_decisions(state / AUDIT_LOG)
    assert len(decisions) == 2 * len(pod.job.spec.silos) and all(d["decision"] == "allow" for d in decisions)
    # No round opened: no checkpoint, no model, only the transform in the registry.
    assert LocalRegistry(state / REGISTRY_DIR).list(job) == []
    assert not (state / "checkpoints").exists()
    outcome = json.loads((state / "outcome.json").read_text())
    assert outcome == {"job": job, "succeeded": True, "rounds_completed": 0, "message": STATISTICS_ONLY_OUTCOME}


@pytest.mark.integration
def test_the_aggregator_and_every_silo_end_after_the_release_and_nothing_runs_again(
    tmp_path: Path, opa_server: OpaServer
) -> None:
    pod = hub_pod(tmp_path, opa_server.url, "masked", job=statistics_only_job())
    ledgers = tmp_path / "silo-ledgers"
    try:
        aggregator = pod.start_aggregator()
        silos = start_silos(pod, "standalone", ledgers)
        # Outside a cluster the run is "standalone", as the aggregator names it without a job UID.
        assert pod.wait(aggregator, 600) == 0, pod.all_logs()
        for name, process in silos:
            assert pod.wait(process, 60) == 0, f"{name}\n{pod.all_logs()}"
        assert_released_once_and_trained_nothing(pod, "standalone", ledgers)
        assert "trains no round" in pod.log(f"{pod.job.spec.silos[0]}-sidecar")

        # Started again on its state directory: it finds the outcome and serves nothing.
        again = pod.start("aggregator-again", fedsilo("-v", *pod.args))
        assert pod.wait(again, 120) == 0, pod.log("aggregator-again")
        assert "already ended" in pod.log("aggregator-again")
        assert_released_once_and_trained_nothing(pod, "standalone", ledgers)
    finally:
        pod.stop_all()


@pytest.mark.integration
def test_in_a_cluster_the_job_succeeds_at_round_zero_with_its_statistics_and_their_charges(
    tmp_path: Path, opa_server: OpaServer, control_plane: ControlPlane
) -> None:
    install_crds(control_plane)
    namespace = control_plane.create_namespace(unique("statistics-only"))
    job, silos = statistics_only_job()
    control_plane.apply(
        *(
            {
                **obj.model_dump(mode="json", by_alias=True, exclude_none=True),
                "metadata": {"name": obj.metadata.name, "namespace": namespace},
            }
            for obj in (job, *silos)
        )
    )
    name = job.metadata.name
    uid = control_plane.kubectl("get", "federatedjob", name, "-n", namespace, "-o", "jsonpath={.metadata.uid}").stdout
    pod = hub_pod(tmp_path, opa_server.url, "masked", uid=uid, namespace=namespace, job=(job, silos))
    ledgers = tmp_path / "silo-ledgers"
    try:
        control_plane.apply(*(o for o in pod.objects if o["kind"] in ("ServiceAccount", "Role", "RoleBinding")))
        kubeconfig = service_account_kubeconfig(
            control_plane, namespace, f"{name}-aggregator", tmp_path / "sa.kubeconfig"
        )
        aggregator = pod.start_aggregator({**pod.env, "KUBECONFIG": str(kubeconfig)})
        processes = start_silos(pod, uid, ledgers)

        def status() -> dict[str, Any]:
            got = control_plane.kubectl("get", "federatedjob", name, "-n", namespace, "-o", "json").stdout
            return json.loads(got).get("status") or {}

        wait_for(
            lambda: status().get("result") == "Succeeded" or aggregator.poll() is not None,
            f"the job's status.result\n{pod.all_logs()}",
            timeout=600,
        )
        final = status()
        assert final["message"] == STATISTICS_ONLY_OUTCOME
        released = final["statistics"]
        assert released["silos"] == sorted(job.spec.silos) and released["epsilon"] == 1.0
        # The hub's ledger's charges, published as each silo's epsilon in the job (and so on its Silo).
        assert released["epsilonSpent"] == final["epsilon"] and set(final["epsilon"]) == set(job.spec.silos)
        with PrivacyLedger(pod.state_dir / PRIVACY_LEDGER_FILE, read_only=True) as hub:
            assert {c.silo: c.epsilon_job for c in hub.history()} == pytest.approx(final["epsilon"])
        events = json.loads(control_plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
        reasons = [e["reason"] for e in events if e["involvedObject"]["uid"] == uid]
        assert reasons.count("StatisticsReleased") == 1 and "JobSucceeded" in reasons, reasons
        assert "RoundCompleted" not in reasons
        for process_name, process in processes:
            assert pod.wait(process, 60) == 0, f"{process_name}\n{pod.all_logs()}"
        # Up until the operator scales it down: a Deployment would restart an exited container.
        assert aggregator.poll() is None, pod.all_logs()
        aggregator.send_signal(signal.SIGTERM)
        assert pod.wait(aggregator, 30) == 0, pod.all_logs()
        assert_released_once_and_trained_nothing(pod, uid, ledgers)
    finally:
        pod.stop_all()


@pytest.mark.integration
def test_fedsilo_run_serves_the_phase_to_its_silo_processes_and_reports_that_no_round_was_trained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    documents = list(yaml.safe_load_all(TABULAR.read_text()))
    documents[0]["spec"]["rounds"] = 0
    documents[0]["spec"]["data"]["tabular"]["recordsPerSilo"] = 1500
    documents[0]["spec"]["data"]["preprocessing"]["epsilon"] = 1.0
    manifest = tmp_path / "census.yaml"
    manifest.write_text(yaml.safe_dump_all(documents))
    ledgers = tmp_path / "ledgers"
    # A short run directory: the trainer link's unix socket lives in it, and the kernel caps its path.
    with tempfile.TemporaryDirectory(prefix="so", dir="/tmp") as short:
        workdir = Path(short) / "run"
        options = ["--workdir", str(workdir), "--ledgers", str(ledgers), "--registry", str(tmp_path / "registry")]
        code = main(["run", str(manifest), *options, "--no-isolation"])
        printed = capsys.readouterr()
        assert code == 0, printed.err
        assert "no round was trained: a statistics-only job (spec.rounds 0)" in printed.out
        assert "statistics only (spec.rounds 0)" in printed.err and "0/0" not in printed.err
        assert "x12 (categorical)" in printed.out and f"audit log: {workdir / AUDIT_LOG}" in printed.out
        report = json.loads((workdir / "report.json").read_text())
        silos = documents[0]["spec"]["silos"]
        assert (report["status"], report["statistics_only"], report["rounds"]) == ("succeeded", True, [])
        assert report["centralized_accuracy"] is None and report["plot"] is None
        assert set(report["statistics_epsilon"]) == set(silos)
        for silo in silos:
            assert "trains no round" in (workdir / "silos" / silo / "sidecar.log").read_text()
        assert not (workdir / "checkpoints").exists()
        assert LocalRegistry(tmp_path / "registry").list("tabular") == []
        with PrivacyLedger(ledgers / "hub.sqlite", read_only=True) as hub:
            for silo in silos:
                with PrivacyLedger(ledgers / "silos" / f"{silo}.sqlite", read_only=True) as own:
                    (mine,) = own.history(silo)
                    assert compare_ledgers(hub, own, silo).agree and mine.round == STATISTICS_ROUND
                assert mine.epsilon_job == pytest.approx(report["statistics_epsilon"][silo])
